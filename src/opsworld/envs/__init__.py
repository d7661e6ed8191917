"""The environments agents act in: Gymnasium envs, the text/tool env and their adapters.

Importing `opsworld` registers `opsworld/Incident-v0` with Gymnasium (when Gymnasium is installed):
`gymnasium.make("opsworld/Incident-v0", scenario="online-shop")`, or N worlds in one batched engine with
`gymnasium.make_vec("opsworld/Incident-v0", num_envs=1024, vectorization_mode="vector_entry_point")`.
"""

ENV_ID = "opsworld/Incident-v0"


def register() -> None:
    """Register the environments with Gymnasium (idempotent)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(ENV_ID, entry_point="opsworld.envs.gym_env:IncidentEnv",
                           vector_entry_point="opsworld.envs.gym_env:IncidentVectorEnv")
