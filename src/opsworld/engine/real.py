"""The engine's floating-point type. float32 halves memory traffic and doubles SIMD width over float64; the model's
own approximation error is far above float32's, and times that need more precision (clocks) stay float64."""

import numpy as np

REAL = np.float32
