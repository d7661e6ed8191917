"""What the processes of a system print: message templates per component kind, runtime and cause.

The log and trace sensors decide *that* something happened from the truth state and the system's state (a call on an
edge failed, a replica was killed, a query was slow); this module decides *how it reads*, the way the real process
would write it: a Go service wraps `dial tcp 10.96.0.14:6379: connect: connection refused`, a Java one throws a
`java.lang.NullPointerException` with its stack, PostgreSQL says `ERROR:  integer out of range`, vLLM reports KV-cache
preemptions. Every template is a function of a component's `Profile` (runtime, protocol, port, datastore flavour) and
a deterministic `Rand`, so the same draw always gives the same text. Nothing here knows of faults: the causes are the
engine's physical facts (`ERROR_KINDS`, `REFUSALS`) and the states the sensors derive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from opsworld.engine.topology import KINDS, Topology

_M64 = (1 << 64) - 1


class Rand:
    """A tiny deterministic generator (SplitMix64) for one log line or span: pure Python, cheap to make, the same
    sequence for the same seed on every machine."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = int(seed) & _M64

    def next64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self.next64() >> 11) * (1.0 / 9007199254740992.0)

    def randint(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + self.next64() % (high - low + 1)

    def choice(self, options: tuple | list):
        return options[self.next64() % len(options)]

    def hex(self, digits: int) -> str:
        out = ""
        while len(out) < digits:
            out += f"{self.next64():016x}"
        return out[:digits]

    def pick(self, weights: list[float]) -> int:
        """An index drawn in proportion to `weights` (all zero: the first)."""
        total = sum(weights)
        if total <= 0.0:
            return 0
        x, acc = self.random() * total, 0.0
        for i, w in enumerate(weights):
            acc += w
            if x < acc:
                return i
        return len(weights) - 1


# ---- who prints: runtimes, protocols, ports ------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    """How one component's processes speak and write: the runtime (services) or product (datastores, caches, queues),
    the protocol callers use, its port, its RPC service and methods, and the process name the kernel shows."""

    name: str
    kind: str            # service, cache, datastore, queue
    runtime: str         # go, java, python, node, dotnet, cpp, rust, lua, vllm; or redis, postgres, mongodb, ...
    protocol: str        # grpc, http, thrift; or the store's own
    port: int
    rpc_service: str     # gRPC / Thrift service name; empty for HTTP services
    methods: tuple[str, ...]
    paths: tuple[str, ...]   # HTTP services: the paths callers use
    process: str         # the command name in kernel messages (15 characters, as the kernel truncates it)

    @property
    def is_store(self) -> bool:
        return self.kind != "service"

    def method(self, slot: int) -> str:
        """The RPC method (or HTTP path) of a caller's `slot`-th call on one edge: calls made twice per request are
        often two different methods (get the cart, then empty it)."""
        if self.protocol == "http":
            return self.paths[slot % len(self.paths)]
        return self.methods[slot % len(self.methods)]

    def operation(self, slot: int) -> str:
        """Span name of a call into this component, as OpenTelemetry instrumentation names it."""
        if self.protocol == "http":
            return f"POST {self.method(slot)}"
        if self.protocol in ("grpc", "thrift"):
            return f"{self.rpc_service}/{self.method(slot)}"
        return self.method(slot)


# Components of the built-in templates whose runtime and interface are known from the systems they model; anything
# else gets a runtime picked from its name (stable) and a generic interface.
_KNOWN: dict[str, tuple[str, str, int, str, tuple[str, ...]]] = {
    # Online Boutique
    "frontend": ("go", "http", 8080, "", ()),
    "currencyservice": ("node", "grpc", 7000, "hipstershop.CurrencyService", ("Convert", "GetSupportedCurrencies")),
    "productcatalogservice": ("go", "grpc", 3550, "hipstershop.ProductCatalogService",
                              ("GetProduct", "ListProducts", "SearchProducts")),
    "cartservice": ("dotnet", "grpc", 7070, "hipstershop.CartService", ("GetCart", "EmptyCart", "AddItem")),
    "recommendationservice": ("python", "grpc", 8080, "hipstershop.RecommendationService", ("ListRecommendations",)),
    "shippingservice": ("go", "grpc", 50051, "hipstershop.ShippingService", ("GetQuote", "ShipOrder")),
    "checkoutservice": ("go", "grpc", 5050, "hipstershop.CheckoutService", ("PlaceOrder",)),
    "paymentservice": ("node", "grpc", 50051, "hipstershop.PaymentService", ("Charge",)),
    "emailservice": ("python", "grpc", 8080, "hipstershop.EmailService", ("SendOrderConfirmation",)),
    "adservice": ("java", "grpc", 9555, "hipstershop.AdService", ("GetAds",)),
    # DeathStarBench hotel reservation (Go, gRPC)
    "search": ("go", "grpc", 8082, "search.Search", ("Nearby",)),
    "geo": ("go", "grpc", 8083, "geo.Geo", ("Nearby",)),
    "rate": ("go", "grpc", 8084, "rate.Rate", ("GetRates",)),
    "profile": ("go", "grpc", 8081, "profile.Profile", ("GetProfiles",)),
    "recommendation": ("go", "grpc", 8085, "recommendation.Recommendation", ("GetRecommendations",)),
    "reservation": ("go", "grpc", 8087, "reservation.Reservation", ("CheckAvailability", "MakeReservation")),
    "user": ("go", "grpc", 8086, "user.User", ("CheckUser",)),
    # DeathStarBench social network (C++ Thrift behind OpenResty)
    "nginx-web-server": ("lua", "http", 8080, "", ()),
    "home-timeline-service": ("cpp", "thrift", 9090, "HomeTimelineService", ("ReadHomeTimeline",)),
    "user-timeline-service": ("cpp", "thrift", 9090, "UserTimelineService", ("ReadUserTimeline", "WriteUserTimeline")),
    "compose-post-service": ("cpp", "thrift", 9090, "ComposePostService", ("ComposePost",)),
    "text-service": ("cpp", "thrift", 9090, "TextService", ("ComposeText",)),
    "url-shorten-service": ("cpp", "thrift", 9090, "UrlShortenService", ("ComposeUrls",)),
    "user-mention-service": ("cpp", "thrift", 9090, "UserMentionService", ("ComposeUserMentions",)),
    "user-service": ("cpp", "thrift", 9090, "UserService", ("ComposeCreatorWithUserId",)),
    "unique-id-service": ("cpp", "thrift", 9090, "UniqueIdService", ("ComposeUniqueId",)),
    "media-service": ("cpp", "thrift", 9090, "MediaService", ("ComposeMedia",)),
    "post-storage-service": ("cpp", "thrift", 9090, "PostStorageService", ("ReadPosts", "StorePost")),
    "write-home-timeline-service": ("cpp", "thrift", 9090, "WriteHomeTimelineService", ("WriteHomeTimeline",)),
    "social-graph-service": ("cpp", "thrift", 9090, "SocialGraphService", ("GetFollowers",)),
    # LLM serving stack
    "api-gateway": ("go", "http", 8080, "", ()),
    "auth": ("go", "grpc", 9000, "auth.v1.AuthService", ("VerifyKey",)),
    "router": ("python", "http", 4000, "", ("/v1/chat/completions",)),
    "tokenizer": ("rust", "http", 8000, "", ("/tokenize",)),
    "embedding-service": ("python", "http", 8080, "", ("/embed",)),
    "metering-service": ("go", "grpc", 9000, "metering.v1.Metering", ("RecordUsage",)),
}

_STORE_PORTS = {"redis": 6379, "postgres": 5432, "mongodb": 27017, "memcached": 11211, "mysql": 3306,
                "kafka": 9092, "rabbitmq": 5672, "qdrant": 6333}
_STORE_PROCESS = {"redis": "redis-server", "postgres": "postgres", "mongodb": "mongod", "memcached": "memcached",
                  "mysql": "mysqld", "kafka": "java", "rabbitmq": "beam.smp", "qdrant": "qdrant"}
_RUNTIME_PROCESS = {"java": "java", "node": "node", "python": "python3", "dotnet": "dotnet", "lua": "nginx",
                    "vllm": "python3"}
_FALLBACK_RUNTIMES = ("go", "java", "python", "node")


def _flavour(kind: str, text: str) -> str:
    """The product a datastore, cache or queue is, from its name and version (`redis-7.2.4`, `mongodb-geo`)."""
    for token, flavour in (("redis", "redis"), ("mongo", "mongodb"), ("postgres", "postgres"), ("pg", "postgres"),
                           ("mysql", "mysql"), ("memcache", "memcached"), ("kafka", "kafka"), ("rabbit", "rabbitmq"),
                           ("qdrant", "qdrant"), ("vector", "qdrant")):
        if token in text:
            return flavour
    return {"datastore": "postgres", "cache": "redis", "queue": "kafka"}[kind]


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def profiles(topology: Topology) -> list[Profile]:
    """The profile of every component, in topology order."""
    out = []
    for s, name in enumerate(topology.components):
        kind = KINDS[int(topology.kind[s])]
        if kind != "service":
            flavour = _flavour(kind, f"{name} {topology.deploy[s]}".lower())
            out.append(Profile(name, kind, flavour, flavour, _STORE_PORTS[flavour], "", _store_ops(flavour), (),
                               _STORE_PROCESS[flavour]))
            continue
        if topology.gpu_count[s] > 0 and name.startswith("model-server"):
            runtime, protocol, port, rpc, methods = "vllm", "http", 8000, "", ("/v1/chat/completions",)
        elif name in _KNOWN:
            runtime, protocol, port, rpc, methods = _KNOWN[name]
        else:
            runtime = _FALLBACK_RUNTIMES[sum(name.encode()) % len(_FALLBACK_RUNTIMES)]
            protocol, port, rpc = "grpc", 8080, f"{_pascal(name)}"
            methods = (f"Get{_pascal(name.split('-')[0])}",)
        paths = methods if protocol == "http" else ()
        if protocol == "http" and not paths:
            paths = ("/",)
        process = _RUNTIME_PROCESS.get(runtime, name)[:15]
        out.append(Profile(name, kind, runtime, protocol, port, rpc, methods or ("Handle",), paths, process))
    return out


def _store_ops(flavour: str) -> tuple[str, ...]:
    return {"redis": ("HGETALL", "HSET", "GET", "ZRANGE", "EXPIRE"), "memcached": ("get", "set"),
            "postgres": ("SELECT", "INSERT", "UPDATE"), "mysql": ("SELECT", "INSERT", "UPDATE"),
            "mongodb": ("find", "insert", "update"), "qdrant": ("search", "upsert"),
            "kafka": ("publish",), "rabbitmq": ("publish",)}[flavour]


DB_SYSTEM = {"redis": "redis", "memcached": "memcached", "postgres": "postgresql", "mysql": "mysql",
             "mongodb": "mongodb", "qdrant": "qdrant"}
MESSAGING_SYSTEM = {"kafka": "kafka", "rabbitmq": "rabbitmq"}


# ---- time ------------------------------------------------------------------------------------------------------------

def iso(unix: float, digits: int = 3) -> str:
    """`2026-11-25T02:00:01.123Z` (milliseconds) or, with digits=0, `2026-11-25T02:00:01Z`."""
    ms = int(round(unix * 1000.0))
    stamp = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z" if digits else f"{stamp}Z"


# ---- own failures: what a failing request prints in the process that fails it ----------------------------------------

_GO_PANICS = (
    "runtime error: invalid memory address or nil pointer dereference",
    "runtime error: index out of range [3] with length 3",
    "assignment to entry in nil map",
    "interface conversion: interface {} is nil, not string",
)
_JAVA_EXCEPTIONS = (
    ("java.lang.NullPointerException", 'Cannot invoke "String.length()" because "category" is null'),
    ("java.lang.IllegalStateException", "Expected BEGIN_OBJECT but was STRING at line 1 column 1 path $"),
    ("java.lang.ArrayIndexOutOfBoundsException", "Index 5 out of bounds for length 5"),
    ("java.lang.NumberFormatException", 'For input string: "null"'),
)
_PY_EXCEPTIONS = (
    ("KeyError", "'product_ids'"),
    ("TypeError", "'NoneType' object is not subscriptable"),
    ("ValueError", "invalid literal for int() with base 10: ''"),
    ("AttributeError", "'NoneType' object has no attribute 'get'"),
)
_NODE_EXCEPTIONS = (
    ("TypeError", "Cannot read properties of undefined (reading 'units')"),
    ("TypeError", "Cannot read properties of null (reading 'currencyCode')"),
    ("RangeError", "Invalid array length"),
    ("SyntaxError", "Unexpected token u in JSON at position 0"),
)
_DOTNET_EXCEPTIONS = (
    ("System.NullReferenceException", "Object reference not set to an instance of an object."),
    ("System.InvalidOperationException", "Sequence contains no elements"),
    ("System.ArgumentOutOfRangeException", "Index was out of range. Must be non-negative and less than the size of "
                                           "the collection. (Parameter 'index')"),
    ("System.FormatException", "Input string was not in a correct format."),
)
_CPP_EXCEPTIONS = (
    ("std::out_of_range", "map::at"),
    ("std::invalid_argument", "stoul"),
    ("nlohmann::json_abi_v3_11_2::detail::type_error", "[json.exception.type_error.302] type must be string, but is "
                                                        "null"),
)
_RUST_PANICS = ("called `Option::unwrap()` on a `None` value",
                "called `Result::unwrap()` on an `Err` value: Utf8Error { valid_up_to: 12, error_len: Some(1) }",
                "index out of bounds: the len is 512 but the index is 512")


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def stack_trace(p: Profile, method: str, rng: Rand) -> tuple[str, str, str]:
    """An unhandled error in a request handler as the runtime prints it: (exception type, message, full text)."""
    r = p.runtime
    if r == "go":
        msg = rng.choice(_GO_PANICS)
        gid = rng.randint(100, 99999)
        text = (f"panic recovered: {msg}\ngoroutine {gid} [running]:\nruntime/debug.Stack()\n"
                f"\t/usr/local/go/src/runtime/debug/stack.go:24 +0x5e\n"
                f"main.(*{_pascal(p.name)[:1].lower() + _pascal(p.name)[1:]}).{method}(0xc000{rng.hex(6)}, "
                f"{{0x1a2b3c0, 0xc000{rng.hex(6)}}}, 0xc000{rng.hex(6)})\n\t/src/server.go:{rng.randint(80, 400)} "
                f"+0x{rng.hex(3)}\ngoogle.golang.org/grpc.(*Server).processUnaryRPC(0xc0001a6000, {{0x1c3f2a8, "
                f"0xc000{rng.hex(6)}}}, {{0x1c47e20, 0xc000{rng.hex(6)}}})\n"
                f"\t/go/pkg/mod/google.golang.org/grpc@v1.64.0/server.go:1379 +0xdf8")
        return "runtime.Error", msg, text
    if r == "java":
        kind, msg = rng.choice(_JAVA_EXCEPTIONS)
        cls = _pascal(p.name)
        text = (f"Exception while executing runtime call {p.rpc_service}/{method}\n{kind}: {msg}\n"
                f"\tat hipstershop.{cls}.{method[:1].lower() + method[1:]}({cls}.java:{rng.randint(90, 260)})\n"
                f"\tat hipstershop.{cls}$Impl.{method[:1].lower() + method[1:]}({cls}.java:{rng.randint(90, 260)})\n"
                f"\tat io.grpc.stub.ServerCalls$UnaryServerCallHandler$UnaryServerCallListener.onHalfClose("
                f"ServerCalls.java:182)\n\tat io.grpc.internal.ServerImpl$JumpToApplicationThreadServerStreamListener"
                f"$1HalfClosed.runInContext(ServerImpl.java:355)\n\tat java.base/java.util.concurrent."
                f"ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1144)")
        return kind, msg, text
    if r in ("python", "vllm"):
        kind, msg = rng.choice(_PY_EXCEPTIONS)
        module = _snake(p.name)
        text = (f"Exception calling application: {msg}\nTraceback (most recent call last):\n"
                f'  File "/usr/local/lib/python3.11/site-packages/grpc/_server.py", line 552, in _call_behavior\n'
                f"    response_or_iterator = behavior(argument, context)\n"
                f'  File "/app/{module}.py", line {rng.randint(40, 220)}, in {method}\n'
                f"    ids = request_data[\"product_ids\"]\n{kind}: {msg}")
        return kind, msg, text
    if r == "node":
        kind, msg = rng.choice(_NODE_EXCEPTIONS)
        text = (f"{kind}: {msg}\n    at {method[:1].lower() + method[1:]} (/usr/src/app/server.js:"
                f"{rng.randint(60, 200)}:{rng.randint(5, 40)})\n    at Object.onReceiveMessage "
                f"(/usr/src/app/node_modules/@grpc/grpc-js/build/src/server.js:1178:25)\n"
                f"    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)")
        return kind, msg, text
    if r == "dotnet":
        kind, msg = rng.choice(_DOTNET_EXCEPTIONS)
        cls = _pascal(p.name)
        text = (f"Error status code 'Unknown' raised.\n{kind}: {msg}\n   at {p.name}.services.{cls}.{method}("
                f"{method}Request request, ServerCallContext context) in /app/services/{cls}.cs:line "
                f"{rng.randint(30, 120)}\n   at Grpc.Shared.Server.UnaryServerMethodInvoker`3.ResolvedInterceptor"
                f"Invoker(TRequest resolvedRequest, ServerCallContext resolvedContext)\n   at Grpc.AspNetCore.Server."
                f"Internal.CallHandlers.UnaryServerCallHandler`3.HandleCallAsyncCore(HttpContext httpContext, "
                f"HttpContextServerCallContext serverCallContext)")
        return kind, msg, text
    if r == "cpp":
        kind, msg = rng.choice(_CPP_EXCEPTIONS)
        text = f"<{p.rpc_service.replace('Service', 'Handler')}::{method}> caught exception {kind}: {msg}"
        return kind, msg, text
    if r == "rust":
        msg = rng.choice(_RUST_PANICS)
        text = (f"thread 'tokio-runtime-worker' panicked at src/handlers.rs:{rng.randint(40, 200)}:"
                f"{rng.randint(5, 40)}:\n{msg}\nnote: run with `RUST_BACKTRACE=1` environment variable to display a "
                f"backtrace")
        return "panic", msg, text
    if r == "lua":
        msg = "attempt to index local 'post' (a nil value)"
        text = (f"[error] {rng.randint(7, 40)}#{rng.randint(7, 40)}: *{rng.randint(1000, 999999)} lua entry thread "
                f"aborted: runtime error: /usr/local/openresty/nginx/lua-scripts/api/{method.strip('/')}.lua:"
                f"{rng.randint(20, 90)}: {msg}")
        return "lua runtime error", msg, text
    # a datastore's own internal error
    return store_error(p, "exception", rng)


_CONFIG_PROBLEMS = (
    ('key "rates.source_url"', 'unsupported protocol scheme "htps"'),
    ('key "feature.recommendations.max_items"', 'value -1 out of range [1, 100]'),
    ('key "pricing.rounding"', 'unknown mode "bankers_v2"'),
    ('key "upstream.pool.max_idle"', "expected integer, got string \"16k\""),
    ('key "render.template_path"', 'open /etc/app/templates/v2/order.tmpl: no such file or directory'),
)


def own_error(p: Profile, kind: str, method: str, rng: Rand, wall: float) -> tuple[str, str, str]:
    """What a request that fails inside component `p` prints there, by what its code does wrong (`ERROR_KINDS`):
    (exception type, short message, full log text)."""
    if p.is_store:
        return store_error(p, kind, rng)
    if kind == "exception":
        return stack_trace(p, method, rng)
    if kind == "config":
        key, problem = rng.choice(_CONFIG_PROBLEMS)
        msg = f"invalid configuration: {key}: {problem}"
        return "ConfigError", msg, f"{method}: {msg}"
    if kind == "fd_exhausted":
        msg = rng.choice((f"accept tcp [::]:{p.port}: accept4: too many open files",
                          "open /etc/ssl/certs/ca-certificates.crt: too many open files",
                          "dial tcp: lookup metadata.google.internal: socket: too many open files"))
        text = (f"http: Accept error: {msg}; retrying in {rng.choice((5, 10, 20, 40))}ms" if "accept4" in msg
                else f"{method}: {msg}")
        return "syscall.Errno", msg, text
    if kind == "clock_skew":
        issued = wall + rng.randint(40, 900)
        msg = rng.choice(("token is not valid yet", "Token used before issued",
                          f"token used before issued: iat {iso(issued, 0)} is after now {iso(wall, 0)}"))
        return "TokenValidationError", msg, f"authentication failed for {method}: {msg}"
    # id_overflow, wraparound, read_only belong to datastores; a service that has them says so through its driver
    etype, msg, _ = store_error(Profile(p.name, "datastore", "postgres", "postgres", 5432, "", (), (), "postgres"),
                                kind, rng)
    return etype, msg, f"{method}: pq: {msg}"


def store_error(p: Profile, kind: str, rng: Rand) -> tuple[str, str, str]:
    """A datastore's (cache's, queue's) own error line for a failing request: (type, short message, log text)."""
    f = p.runtime
    db = p.name.replace("-", "_")
    if kind == "id_overflow":
        if f == "mongodb":
            msg = (f"Plan executor error during findAndModify :: caused by :: Failed to apply $inc operations to "
                   f"current value ((NumberInt)2147483647) for document {{_id: \"{db}_id\"}}")
            return "WriteError", msg, _mongo_json("E", "COMMAND", msg)
        if f == "redis":
            return "ResponseError", "ERR increment or decrement would overflow", \
                "-ERR increment or decrement would overflow"
        msg = rng.choice(("integer out of range", f'nextval: reached maximum value of sequence "{db}_id_seq" '
                                                  f"(2147483647)"))
        return "DataError", msg, f"ERROR:  {msg}\nSTATEMENT:  INSERT INTO {db} (id, created_at) VALUES (DEFAULT, now())"
    if kind == "wraparound":
        msg = f'database is not accepting commands to avoid wraparound data loss in database "{db}"'
        return "ProgramLimitExceeded", msg, (f"ERROR:  {msg}\nHINT:  Stop the postmaster and vacuum that database "
                                             f"in single-user mode.")
    if kind == "read_only":
        if f == "mongodb":
            msg = "NotWritablePrimary: not primary and secondaryOk=false"
            return "NotWritablePrimary", msg, _mongo_json("E", "REPL", msg)
        if f == "redis":
            msg = "READONLY You can't write against a read only replica."
            return "ReadOnlyError", msg, f"-{msg}"
        msg = rng.choice(("cannot execute INSERT in a read-only transaction",
                          "cannot execute UPDATE in a read-only transaction"))
        return "ReadOnlySqlTransaction", msg, f"ERROR:  {msg}"
    if kind == "config":
        msg = rng.choice(('invalid value for parameter "work_mem": "64MBB"',
                          'unrecognized configuration parameter "shared_buffer"'))
        return "ConfigError", msg, f"ERROR:  {msg}"
    if kind == "fd_exhausted":
        msg = "accept: Too many open files"
        return "OSError", msg, (f"Error accepting a client connection: {msg}" if f == "redis" else f"LOG:  {msg}")
    if kind == "clock_skew":
        msg = "SSL error: certificate is not yet valid"
        return "SSLError", msg, f"LOG:  could not accept SSL connection: {msg}"
    if f == "mongodb":
        msg = "WriteConflict error: this operation conflicted with another operation. Please retry your operation."
        return "WriteConflict", msg, _mongo_json("W", "COMMAND", msg)
    if f in ("redis", "memcached"):
        msg = "LOADING Redis is loading the dataset in memory" if f == "redis" else "SERVER_ERROR out of memory " \
                                                                                    "storing object"
        return "ResponseError", msg, msg
    if f in ("kafka", "rabbitmq"):
        msg = "NOT_ENOUGH_REPLICAS" if f == "kafka" else "PRECONDITION_FAILED - message rejected"
        return "BrokerError", msg, f"Error processing produce request: {msg}"
    msg = "could not serialize access due to concurrent update"
    return "SerializationFailure", msg, f"ERROR:  {msg}"


def _mongo_json(severity: str, component: str, msg: str) -> str:
    return ('{"s":"%s","c":"%s","id":%d,"ctx":"conn%d","msg":"%s"}'
            % (severity, component, 20000 + len(msg) * 7 % 9000, 1000 + len(msg) * 13 % 8000, msg.replace('"', "'")))


# ---- failed calls: what the caller prints ----------------------------------------------------------------------------

# Why a call attempt failed, as the caller can tell. The refusals (`REFUSALS`) first, then what the callee did.
REFUSED, NO_SUCH_HOST, IO_TIMEOUT, UNAUTHORIZED, TOO_MANY_CLIENTS = range(5)
CERT_EXPIRED, RATE_LIMITED, NO_ENDPOINTS, QUEUE_FULL, BREAKER_OPEN, DEADLINE, POOL_EXHAUSTED, CALLEE_ERROR = \
    range(5, 13)
CALL_CAUSES = 13


@dataclass(frozen=True)
class CallContext:
    """What a failed-call message needs to know: who called whom, where, and the facts of the moment."""

    caller: Profile
    callee: Profile
    address: str          # the callee's service IP
    wall: float           # Unix seconds when it failed
    not_after: float      # the callee's certificate's not-after (CERT_EXPIRED)
    pool_size: int        # connections per caller replica (POOL_EXHAUSTED)
    timeout: float        # seconds the caller waited (DEADLINE)
    slot: int             # which of the caller's calls on the edge (picks the method)
    inner: str = ""       # CALLEE_ERROR: what the callee answered (its own short message)
    source: str = "10.8.0.5"  # the caller pod's address


def call_failure(cause: int, c: CallContext, rng: Rand) -> tuple[str, str]:
    """(exception type, message) of a failed call attempt, as the caller's client library reports it."""
    callee, port, ip = c.callee, c.callee.port, c.address
    core: str
    if cause == REFUSED:
        core, etype = f"dial tcp {ip}:{port}: connect: connection refused", "*net.OpError"
    elif cause == NO_SUCH_HOST:
        core, etype = f"dial tcp: lookup {callee.name} on 10.96.0.10:53: no such host", "*net.DNSError"
    elif cause == IO_TIMEOUT:
        core, etype = f"dial tcp {ip}:{port}: i/o timeout", "*net.OpError"
    elif cause == UNAUTHORIZED:
        if callee.runtime == "postgres":
            core = f'FATAL: password authentication failed for user "{_snake(c.caller.name)}"'
        elif callee.runtime == "mongodb":
            core = ("connection() error occurred during connection handshake: auth error: sasl conversation error: "
                    "unable to authenticate using mechanism \"SCRAM-SHA-256\": (AuthenticationFailed) Authentication "
                    "failed.")
        elif callee.runtime == "redis":
            core = "WRONGPASS invalid username-password pair or user is disabled."
        else:
            return "StatusRuntimeException", "rpc error: code = Unauthenticated desc = invalid credentials"
        etype = "AuthenticationError"
    elif cause == TOO_MANY_CLIENTS:
        if callee.runtime == "mongodb":
            core = "connection refused because too many open connections: 819"
        elif callee.runtime == "redis":
            core = "ERR max number of clients reached"
        else:
            core = "FATAL: sorry, too many clients already"
        etype = "TooManyConnections"
    elif cause == CERT_EXPIRED:
        core = (f"tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time "
                f"{iso(c.wall, 0)} is after {iso(c.not_after, 0)}")
        etype = "x509.CertificateInvalidError"
        if not callee.is_store:
            return etype, (f'rpc error: code = Unavailable desc = connection error: desc = "transport: authentication '
                           f'handshake failed: {core}"')
    elif cause == RATE_LIMITED:
        if callee.protocol == "http":
            return "HTTPError", f"429 Too Many Requests: rate limit exceeded for {callee.name}"
        return "StatusRuntimeException", ("rpc error: code = ResourceExhausted desc = RESOURCE_EXHAUSTED: Quota "
                                          "exceeded for quota metric 'requests' and limit 'requests per minute'")
    elif cause == NO_ENDPOINTS:
        core, etype = f"dial tcp {ip}:{port}: connect: connection refused", "*net.OpError"
    elif cause == QUEUE_FULL:
        if callee.runtime == "rabbitmq":
            return "ChannelClosed", ("Exception (406) Reason: \"PRECONDITION_FAILED - queue "
                                     f"'{callee.name}' in vhost '/' reached max-length\"")
        return "KafkaError", f"kafka: Failed to produce message to topic {callee.name}: Broker: Queue full"
    elif cause == BREAKER_OPEN:
        return "CircuitBreakerOpen", f"circuit breaker is open for {callee.name}: failing fast"
    elif cause == POOL_EXHAUSTED:
        return "PoolTimeout", (f"connection pool exhausted: timed out waiting for a connection (pool size "
                               f"{c.pool_size})")
    elif cause == DEADLINE:
        if callee.is_store:
            return "*net.OpError", rng.choice((f"read tcp {c.source}:{rng.randint(32768, 60999)}->{ip}:{port}: i/o "
                                               f"timeout", "context deadline exceeded"))
        if callee.protocol == "http":
            return "*url.Error", (f'Post "http://{callee.name}:{port}{callee.method(c.slot)}": context deadline '
                                  f'exceeded (Client.Timeout exceeded while awaiting headers)')
        return "StatusRuntimeException", "rpc error: code = DeadlineExceeded desc = context deadline exceeded"
    else:   # CALLEE_ERROR: the callee answered with an error
        inner = c.inner or "internal error"
        if callee.is_store:
            prefix = {"postgres": "pq: ", "mongodb": "write exception: ", "redis": "", "memcached": ""}.get(
                callee.runtime, "")
            return "DatabaseError", f"{prefix}{inner}"
        if callee.protocol == "http":
            return "HTTPError", f"{callee.method(c.slot)}: 500 Internal Server Error: {inner}"
        return "StatusRuntimeException", f"rpc error: code = Unknown desc = {inner}"
    if callee.is_store:
        return etype, core
    return etype, (f'rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
                   f'{core}"')


def call_log(caller: Profile, callee: Profile, slot: int, message: str) -> str:
    """The caller's log line for a failed call: its own words around the client library's message."""
    verb = callee.method(slot)
    if callee.is_store:
        what = {"kafka": "publish usage event", "rabbitmq": "publish message"}.get(callee.runtime, f"{verb} on "
                                                                                            f"{callee.name}")
    else:
        what = f"call {callee.name}{'' if callee.protocol == 'http' else '.' + verb}"
    r = caller.runtime
    if r == "python":
        return f"failed to {what}: {message}"
    if r == "java":
        return f"Failed to {what}\nio.grpc.StatusRuntimeException: {message}"
    if r == "node":
        return f"request to {callee.name} failed: Error: {message}"
    if r == "dotnet":
        return f"Failed to {what}: Grpc.Core.RpcException: {message}"
    if r == "cpp":
        return f"Failed to {what}: {message}"
    if r == "lua":
        return f"[error] upstream {callee.name} failed: {message}"
    return f"failed to {what}: {message}"


# ---- lifecycle, resources, probes ------------------------------------------------------------------------------------

def startup(p: Profile, version: str, rng: Rand) -> str:
    if p.runtime == "postgres":
        return "LOG:  database system is ready to accept connections"
    if p.runtime == "redis":
        return f"Redis version={version.split('-')[-1]}, bits=64, pid=1, just started"
    if p.runtime == "mongodb":
        return _mongo_json("I", "NETWORK", f"Waiting for connections on port {p.port}")
    if p.runtime in ("kafka", "rabbitmq", "memcached", "qdrant", "mysql"):
        return f"{p.name} {version} started, listening on port {p.port}"
    if p.runtime == "vllm":
        return f"vLLM API server version {version.lstrip('v')} started; Uvicorn running on http://0.0.0.0:{p.port}"
    return f"starting {p.name} {version}; listening on :{p.port}"


def crash_at_start(p: Profile, consumer_of: str | None, rng: Rand) -> str:
    """What a broken build (or a consumer that cannot handle a message) prints as it dies seconds after starting."""
    if consumer_of is not None:
        offset, part = rng.randint(100_000, 9_999_999), rng.randint(0, 11)
        return (f"panic: failed to process message at offset {offset} on partition {part} of {consumer_of}: "
                f"unexpected end of JSON input\n\ngoroutine 1 [running]:\nmain.(*consumer).handle(0xc0001b2000, "
                f"{{0xc000{rng.hex(6)}, 0x1f4, 0x200}})\n\t/src/consumer.go:{rng.randint(40, 200)} +0x{rng.hex(3)}")
    if p.runtime == "java":
        return ("Exception in thread \"main\" java.lang.NoSuchMethodError: 'void io.grpc.ServerBuilder.forPort(int)'\n"
                "\tat hipstershop.AdService.start(AdService.java:68)\n\tat hipstershop.AdService.main("
                "AdService.java:277)")
    if p.runtime in ("python", "vllm"):
        return ("Traceback (most recent call last):\n  File \"/app/server.py\", line 12, in <module>\n    from "
                "grpc_health.v1 import health_pb2_grpc\nModuleNotFoundError: No module named 'grpc_health'")
    if p.runtime == "node":
        return ("Error: Cannot find module './proto/demo_pb'\nRequire stack:\n- /usr/src/app/server.js\n    at "
                "Module._resolveFilename (node:internal/modules/cjs/loader:1140:15)")
    if p.runtime == "dotnet":
        return ("Unhandled exception. System.IO.FileNotFoundException: Could not load file or assembly "
                "'Grpc.HealthCheck, Version=2.62.0.0'. The system cannot find the file specified.")
    if p.is_store:
        return f"FATAL: could not load configuration file: unexpected key \"{rng.choice(('maxmemory', 'listen'))}\""
    return (f"panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation "
            f"violation code=0x1 addr=0x18 pc=0x{rng.hex(6)}]\n\ngoroutine 1 [running]:\nmain.mustMapEnv(...)\n"
            f"\t/src/main.go:{rng.randint(90, 300)}\nmain.main()\n\t/src/main.go:{rng.randint(60, 90)} +0x{rng.hex(3)}")


def back_off(p: Profile, pod: str, restarts: int, rng: Rand) -> str:
    return (f"Back-off restarting failed container {p.name} in pod {pod}_prod({rng.hex(8)}-{rng.hex(4)}); "
            f"restart count {restarts}")


def oom_kill(p: Profile, pod: str, limit: float, rng: Rand) -> list[tuple[str, str]]:
    """(level, text) lines of an out-of-memory kill: the runtime's last words where it has any, the kernel's kill,
    and the container's termination."""
    kb = int(limit / 1024)
    out = []
    if p.runtime == "java":
        out.append(("ERROR", "java.lang.OutOfMemoryError: Java heap space"))
    elif p.runtime == "node":
        out.append(("ERROR", "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"))
    out.append(("ERROR", f"Memory cgroup out of memory: Killed process {rng.randint(7, 32000)} ({p.process}) "
                         f"total-vm:{kb + rng.randint(100_000, 900_000)}kB, anon-rss:{kb - rng.randint(0, 2048)}kB, "
                         f"file-rss:{rng.randint(4000, 40000)}kB, shmem-rss:0kB, UID:1000 pgtables:"
                         f"{rng.randint(800, 4000)}kB oom_score_adj:{rng.choice((985, 999, 1000))}"))
    out.append(("WARN", f"container {p.name} in pod {pod} terminated: reason=OOMKilled exitCode=137; restarting"))
    return out


def shutdown(p: Profile) -> str:
    if p.runtime == "postgres":
        return "LOG:  received fast shutdown request"
    if p.runtime == "redis":
        return "Received SIGTERM scheduling shutdown..."
    return "signal received: terminated; shutting down gracefully"


def probe_failed(pod_ip: str, port: int, rng: Rand) -> str:
    path = rng.choice(("/healthz", "/_healthz", "/ready"))
    return (f'Readiness probe failed: Get "http://{pod_ip}:{port}{path}": context deadline exceeded '
            f"(Client.Timeout exceeded while awaiting headers)")


def disk_full(p: Profile, rng: Rand) -> str:
    if p.runtime == "postgres":
        return "PANIC:  could not write to file \"pg_wal/xlogtemp.1234\": No space left on device"
    if p.runtime == "redis":
        return "Write error saving DB on disk: No space left on device"
    if p.runtime == "mongodb":
        return _mongo_json("E", "STORAGE", "WiredTiger error: __posix_file_write, 617: /data/db/journal/WiredTigerLog:"
                                           " handle-write: pwrite: failed to write: No space left on device")
    return f"write /var/log/{p.name}/{p.name}.log: no space left on device"


def tls_rejected(peer_ip: str, rng: Rand) -> str:
    return f"http: TLS handshake error from {peer_ip}:{rng.randint(32768, 60999)}: remote error: tls: bad certificate"


def rate_limited(p: Profile, rng: Rand) -> str:
    key = f"sk-...{rng.hex(4)}"
    if p.protocol == "http":
        return f"429 Too Many Requests: rate limit exceeded for key {key}"
    return f"RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'requests' (key {key})"


def refused_at_store(p: Profile, caller: str, cause: int, peer_ip: str, rng: Rand) -> str:
    """What a datastore logs when it turns a client away (bad credentials, too many connections)."""
    if cause == UNAUTHORIZED:
        user = _snake(caller)
        if p.runtime == "postgres":
            return (f'FATAL:  password authentication failed for user "{user}"\nDETAIL:  Connection matched '
                    f'pg_hba.conf line 99: "host all all all scram-sha-256"')
        if p.runtime == "mongodb":
            return _mongo_json("I", "ACCESS", f"Authentication failed: user {user}@admin: AuthenticationFailed")
        return f"AUTH failed for user {user} from {peer_ip}"
    if p.runtime == "postgres":
        return "FATAL:  sorry, too many clients already"
    if p.runtime == "mongodb":
        return _mongo_json("I", "NETWORK", "Connection refused because there are too many open connections")
    return f"Error accepting a client connection: max number of clients reached ({peer_ip})"


def slow_query(p: Profile, millis: float, rng: Rand) -> tuple[str, str]:
    """(level, text) of a datastore's slow-query log line, or an empty text where the product has none."""
    table = p.name.split("-")[-1] if "-" in p.name else p.name
    if p.runtime in ("postgres", "mysql"):
        stmt = rng.choice((f"SELECT * FROM {table} WHERE id = $1", f"SELECT count(*) FROM {table} WHERE created_at "
                                                                    f"> $1", f"UPDATE {table} SET updated_at = now() "
                                                                             f"WHERE id = $1"))
        return "INFO", f"LOG:  duration: {millis:.3f} ms  statement: {stmt}"
    if p.runtime == "mongodb":
        return "INFO", ('{"s":"I","c":"COMMAND","id":51803,"ctx":"conn%d","msg":"Slow query","attr":{"type":"command",'
                        '"ns":"%s.%s","command":{"find":"%s"},"planSummary":"COLLSCAN","durationMillis":%d}}'
                        % (rng.randint(100, 9000), p.name.replace("mongodb-", ""), table, table, int(millis)))
    if p.runtime == "qdrant":
        return "WARN", f"Slow search request: collection=documents took {millis / 1000.0:.3f}s"
    return "INFO", ""


def slow_request(p: Profile, route: str, seconds: float) -> str:
    return f"slow request: {route} took {seconds * 1000.0:.1f}ms"


def kv_preempted(total: int, rng: Rand) -> str:
    return (f"Sequence group cmpl-{rng.hex(32)} is preempted by PreemptionMode.RECOMPUTE mode because there is not "
            f"enough KV cache space. This can affect the end-to-end performance. Increase gpu_memory_utilization or "
            f"tensor_parallel_size to provide more KV cache memory. total_num_cumulative_preemption={total}")


def kv_stats(running: int, pending: int, usage: float, rng: Rand) -> str:
    return (f"Avg prompt throughput: {rng.random() * 400 + 50:.1f} tokens/s, Avg generation throughput: "
            f"{running * (rng.random() * 20 + 25):.1f} tokens/s, Running: {running} reqs, Swapped: 0 reqs, Pending: "
            f"{pending} reqs, GPU KV cache usage: {100.0 * usage:.1f}%, CPU KV cache usage: 0.0%.")


def kv_failed(rng: Rand) -> tuple[str, str]:
    """(exception type, message) of a request vLLM cannot schedule for lack of KV-cache blocks."""
    return "ValueError", (f"The decoder prompt (length {rng.choice((65536, 98304, 131072))}) does not fit in the "
                          f"KV cache; no KV cache blocks left to schedule the sequence")


# ---- traffic, chatter, harmless noise --------------------------------------------------------------------------------

HTTP_STATUS = {"ok": 200, "error": 500, "dependency": 502, "timeout": 504, "unavailable": 503}
GRPC_CODE = {"ok": "OK", "error": "Unknown", "dependency": "Internal", "timeout": "DeadlineExceeded",
             "unavailable": "Unavailable"}


def access(p: Profile, route: str, outcome: str, seconds: float, peer_ip: str, wall: float, rng: Rand) -> str:
    """One request as the component's access or request log writes it."""
    if p.runtime == "lua":
        method, _, path = route.partition(" ")
        stamp = datetime.fromtimestamp(int(wall), tz=timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        return (f'{peer_ip} - - [{stamp}] "{method or "GET"} {path or route} HTTP/1.1" {HTTP_STATUS[outcome]} '
                f'{rng.randint(200, 9000)} "-" "wrk/4.1.0" rt={seconds:.3f}')
    if p.protocol == "http":
        method, _, path = route.partition(" ")
        return (f"request complete method={method or 'POST'} path={path or route} status={HTTP_STATUS[outcome]} "
                f"took={seconds * 1000.0:.1f}ms")
    code = GRPC_CODE[outcome]
    if p.runtime == "python":
        return f"[{route.split('/')[-1]}] request finished code={code} elapsed={seconds * 1000.0:.1f}ms"
    if p.runtime == "java":
        return f"received ad request (context_words=[{rng.choice(('clothing', 'kitchen', 'footwear'))}]) code={code}"
    if p.runtime == "node":
        return f"{route.split('/')[-1]} request completed code={code} duration_ms={seconds * 1000.0:.1f}"
    if p.runtime == "dotnet":
        return f"Request finished HTTP/2 POST http://{p.name}:{p.port}/{route} - {HTTP_STATUS[outcome]} - " \
               f"application/grpc {seconds * 1000.0:.4f}ms"
    if p.runtime == "cpp":
        return f"<{route.split('/')[-1]}> done status={code} latency_us={int(seconds * 1e6)}"
    return (f"finished unary call with code {code} grpc.method={route.split('/')[-1]} "
            f"grpc.time_ms={seconds * 1000.0:.3f}")


_DEBUG = {
    "go": ("health check passed", "refreshed service endpoints: {n} ready", "flushed metrics batch ({m} points)",
           "gc: heap {h}MB -> {g}MB"),
    "java": ("Refreshing ad inventory cache ({m} entries)", "GC(1234) Pause Young (Normal) (G1 Evacuation Pause) "
                                                             "{h}M->{g}M(512M) 3.120ms", "health check passed"),
    "python": ("health check passed", "worker heartbeat: {n} requests in flight"),
    "node": ("conversion rates refreshed ({m} currencies)", "health check passed", "event loop lag {n}ms"),
    "dotnet": ("Checking CartService Health", "Redis connection multiplexer status: connected ({n} endpoints)"),
    "cpp": ("Thrift server worker pool: {n} busy / 64", "connection pool stats: {m} idle"),
    "rust": ("tokenizer cache hit ratio {r}", "health check passed"),
    "lua": ("lua shared dict usage {r}", "upstream keepalive pool: {n} connections"),
    "vllm": ("Received request cmpl-{x}: prompt_tokens={m}", "Finished request cmpl-{x}"),
    "postgres": ("LOG:  checkpoint starting: time", "LOG:  checkpoint complete: wrote {m} buffers ({r}%); 0 WAL "
                                                    "file(s) added, 0 removed, 1 recycled"),
    "redis": ("{m} changes in 300 seconds. Saving...", "Background saving started by pid {n}", "DB saved on disk"),
    "mongodb": (_mongo_json("I", "NETWORK", "Connection accepted"), _mongo_json("I", "STORAGE", "WiredTiger message")),
    "memcached": ("<{n} new auto-negotiating client connection", "<{n} connection closed."),
    "kafka": ("[LocalLog partition=events-0, dir=/var/lib/kafka/data] Rolled new log segment at offset {m} in {n} ms.",
              "[GroupCoordinator 1]: Stabilized group consumers generation {n}"),
    "rabbitmq": ("accepting AMQP connection <0.{m}.0> ({ip}:{port} -> {ip}:5672)", "closing AMQP connection <0.{m}.0>"),
    "qdrant": ("Optimizer: merged {n} segments", "collection documents: {m} points indexed"),
    "mysql": ("InnoDB: page_cleaner: 1000ms intended loop took {m}ms",),
}


# what only some services say about themselves (a recommender does not render e-mails)
_OWN_DEBUG = {
    "emailservice": ("rendered template order_confirmation.html",),
    "recommendationservice": ("loaded {m} catalog entries",),
}


def chatter(p: Profile, rng: Rand) -> str:
    """A line of the routine things a process says about itself: its runtime's, and its own where it has some."""
    text = rng.choice(_DEBUG.get(p.runtime, _DEBUG["go"]) + _OWN_DEBUG.get(p.name, ()))
    return _fill(text, n=rng.randint(1, 64), m=rng.randint(100, 90000), h=rng.randint(40, 400),
                 g=rng.randint(20, 200), r=f"{rng.random():.2f}", x=rng.hex(12), ip=f"10.8.0.{rng.randint(2, 250)}",
                 port=rng.randint(32768, 60999))


def _fill(text: str, **values: object) -> str:
    """`{name}` placeholders filled in (JSON braces in the text left alone, unlike str.format)."""
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(value))
    return text


_BENIGN_WARN = (
    "client closed the connection before the response was written (context canceled)",
    'deprecated request field "currency_code" used by client; use "currency" instead',
    "request body of {m} bytes truncated in the debug log",
    "retrying after transient error (attempt 2 of 2): transport is closing",
    "slow DNS answer from 10.96.0.10:53 ({n}ms)",
    "config reload: no changes",
)
_BENIGN_ERROR = (
    'invalid argument: product id "" does not exist',
    "failed to parse Accept-Language header \"xx;q=abc\"",
    "request rejected: missing required field \"user_id\"",
    "failed to export spans batch: rpc error: code = Unavailable desc = collector is restarting (will retry)",
)


def benign(level: str, rng: Rand) -> str:
    """A harmless warning or error, the kind every production log has."""
    text = rng.choice(_BENIGN_WARN if level == "WARN" else _BENIGN_ERROR)
    return _fill(text, m=rng.randint(1 << 20, 8 << 20), n=rng.randint(200, 900))


def retried(caller: Profile, callee: Profile, slot: int, attempt: int, tries: int) -> str:
    """A call that failed once and is being tried again (and will succeed)."""
    return (f"retrying {callee.name}{'' if callee.is_store or callee.protocol == 'http' else '.' + callee.method(slot)}"
            f" (attempt {attempt} of {tries})")


_BAD_FIELDS = (("price.units", "-2147483648"), ("currency_code", '""'), ("id", '"\\u0000\\u0000"'),
               ("items", "null"), ("total.nanos", "1000000000"))
_BAD_JSON = (("choices", "[]"), ("choices[0].message.content", "null"), ("usage.completion_tokens", "-1"),
             ("data[0].embedding", "[]"))
_BAD_COMPLETIONS = ("unterminated JSON object at offset {n}", "completion is empty (finish_reason=stop)",
                    "response language does not match the request", "repeated token run of {n} tokens")


def bad_answer(caller: Profile, callee: Profile, slot: int, rng: Rand) -> str:
    """A caller noticing that an answer reported as a success is wrong: a field out of range, a stale read, an
    unusable completion. Most wrong answers go unnoticed; the few a validation catches read like this."""
    if callee.runtime == "vllm":
        problem = rng.choice(_BAD_COMPLETIONS).replace("{n}", str(rng.randint(40, 4000)))
        return f"completion from {callee.name} failed output validation: {problem}"
    if callee.is_store:
        version = rng.randint(1000, 90000)
        return (f"stale read from {callee.name}: got version {version}, older than version "
                f"{version + rng.randint(1, 40)} written before it")
    if callee.runtime == "rust":
        return f"token count from {callee.name} does not match the prompt: 0 tokens for {rng.randint(200, 9000)} bytes"
    field, value = rng.choice(_BAD_JSON if callee.protocol == "http" else _BAD_FIELDS)
    what = f"{callee.name} {callee.method(slot)}" if callee.protocol == "http" else \
        f"{callee.name}.{callee.method(slot)}"
    return f"invalid response from {what}: {field}={value}" + ("" if callee.protocol == "http" else
                                                               "; dropping the item")


def canceled(p: Profile, route: str) -> str:
    return f"{route}: request canceled while queued: context canceled"
