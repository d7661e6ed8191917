"""Loading scenario files: a valid file loads; each kind of mistake is refused with one line naming the file,
the field path and the fix."""

from __future__ import annotations

import textwrap

import pytest

from opsworld.spec import loader
from opsworld.spec.loader import ScenarioError, call_edges, find_call_cycle, load_scenario, template_path, templates
from opsworld.spec.schema import Cache, Datastore, Queue, Scenario

VALID = textwrap.dedent(
    """\
    name: shop
    description: a web shop
    duration: 2h
    tick: 10s
    nodes:
      - {name: node-1, zone: zone-a}
      - {name: node-2, zone: zone-b, cpu: 16, memory: 64Gi}
    components:
      web:
        replicas: 3
        cpu: 500m
        memory: 512Mi
        service_time: {mean: 5ms, cv: 0.5}
        dependencies:
          - {target: cache, timeout: 200ms, retries: 2}
          - {target: events}
      cache:
        kind: cache
        fronts: db
        hit_ratio: 95%
        service_time: {mean: 300us}
      db:
        kind: datastore
        nodes: [node-1]
        service_time: {mean: 2ms}
      events:
        kind: queue
        consumer: worker
        capacity: 10000
        service_time: {mean: 100us}
      worker:
        service_time: {mean: 20ms}
        dependencies: [{target: db}]
    traffic:
      base_rate: 100/s
      start: 2026-11-25T00:00:00Z
      diurnal: {amplitude: 0.3, peak: 14:00}
      endpoints:
        - name: GET /
          service: web
          slo: {availability: 99.9%, latency: 300ms}
    """
)


def refused(source, path: str, *words: str, overrides=None) -> ScenarioError:
    """Load `source`, expect a ScenarioError at `path`, and check the message is one clear line."""
    with pytest.raises(ScenarioError) as info:
        load_scenario(source, overrides)
    error = info.value
    message = str(error)
    label = "<scenario>" if isinstance(source, dict) else str(source)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{label}: "), message
    assert error.source == label
    assert error.path == path, message
    if path:
        assert f": {path}: " in message
    assert error.problem and error.fix, message
    assert message.endswith(f"; {error.fix}")
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return error


def test_valid_file_loads(write_yaml):
    scenario = load_scenario(write_yaml(VALID))
    assert isinstance(scenario, Scenario)
    assert scenario.name == "shop" and scenario.duration == 7200.0
    web = scenario.components["web"]
    assert web.replicas == 3 and web.cpu == 0.5 and web.memory == 512 * 2**20
    assert web.service_time.mean == pytest.approx(0.005)
    assert web.dependencies[0].timeout == pytest.approx(0.2)
    assert isinstance(scenario.components["cache"], Cache) and scenario.components["cache"].hit_ratio == 0.95
    assert isinstance(scenario.components["db"], Datastore)
    assert isinstance(scenario.components["events"], Queue)
    assert scenario.traffic.base_rate == 100.0
    assert scenario.traffic.diurnal.peak == 14 * 3600.0  # unquoted 14:00 is a clock time, not YAML's base-60 840
    assert scenario.traffic.endpoints[0].slo.availability == pytest.approx(0.999)
    assert sorted(call_edges(scenario)) == sorted(
        [("web", "cache"), ("web", "events"), ("cache", "db"), ("events", "worker"), ("worker", "db")]
    )
    assert find_call_cycle(scenario) == []


def test_minimal_dict_loads(make_scenario):
    scenario = load_scenario(make_scenario())
    assert scenario.components["web"].dependencies[0].target == "db"


def test_path_object_and_str_both_load(write_yaml):
    path = write_yaml(VALID)
    assert load_scenario(path) == load_scenario(str(path))


def test_unquoted_yaml_date_is_midnight_utc(write_yaml):
    path = write_yaml(VALID.replace("start: 2026-11-25T00:00:00Z", "start: 2026-11-25"))
    assert load_scenario(path).traffic.start == load_scenario(write_yaml(VALID, "b.yaml")).traffic.start


# --- mistakes --------------------------------------------------------------------------------------------------


def test_unknown_top_level_field(write_yaml):
    path = write_yaml(VALID + "descripton: typo\n")
    error = refused(path, "descripton", "unknown field 'descripton'", "did you mean 'description'?")
    assert "traffic" in error.fix  # lists the fields that exist


def test_unknown_component_field(write_yaml):
    path = write_yaml(VALID.replace("replicas: 3", "replica: 3"))
    refused(path, "components.web.replica", "unknown field 'replica'", "did you mean 'replicas'?")


def test_unknown_dependency_field(write_yaml):
    path = write_yaml(VALID.replace("timeout: 200ms", "timout: 200ms"))
    refused(path, "components.web.dependencies[0].timout", "unknown field 'timout'", "did you mean 'timeout'?")


def test_unknown_field_in_a_cache_suggests_its_own_fields(write_yaml):
    path = write_yaml(VALID.replace("hit_ratio: 95%", "hit_rate: 95%"))
    refused(path, "components.cache.hit_rate", "did you mean 'hit_ratio'?")


def test_unknown_field_named_like_a_kind_keeps_its_path(write_yaml):
    path = write_yaml(VALID.replace("replicas: 3", "service: 3"))
    refused(path, "components.web.service", "unknown field 'service'")


def test_wrong_unit(write_yaml):
    path = write_yaml(VALID.replace("timeout: 200ms", "timeout: 2MB"))
    refused(path, "components.web.dependencies[0].timeout", "'2MB' is not a duration", "2s")


def test_missing_unit(write_yaml):
    path = write_yaml(VALID.replace("timeout: 200ms", "timeout: 2"))
    refused(path, "components.web.dependencies[0].timeout", "2 has no unit", "write a duration such as 2s")


def test_missing_unit_on_a_size(write_yaml):
    path = write_yaml(VALID.replace("memory: 512Mi", "memory: 512"))
    refused(path, "components.web.memory", "no unit", "512Mi")


def test_wrong_unit_on_a_rate(write_yaml):
    path = write_yaml(VALID.replace("base_rate: 100/s", "base_rate: 100ms"))
    refused(path, "traffic.base_rate", "not a rate", "200/s")


def test_negative_replicas(write_yaml):
    path = write_yaml(VALID.replace("replicas: 3", "replicas: -1"))
    refused(path, "components.web.replicas", "-1 is out of range", "at least 1")


def test_zero_concurrency(write_yaml):
    path = write_yaml(VALID.replace("replicas: 3", "concurrency: 0"))
    refused(path, "components.web.concurrency", "0 is out of range", "at least 1")


def test_negative_queue_capacity(write_yaml):
    path = write_yaml(VALID.replace("capacity: 10000", "capacity: -5"))
    refused(path, "components.events.capacity", "out of range", "at least 1")


def test_negative_service_time(write_yaml):
    path = write_yaml(VALID.replace("mean: 5ms", "mean: -5ms"))
    refused(path, "components.web.service_time.mean", "negative", "2s")


def test_fraction_above_one(write_yaml):
    path = write_yaml(VALID.replace("hit_ratio: 95%", "hit_ratio: 150%"))
    refused(path, "components.cache.hit_ratio", "outside 0..1")


def test_dependency_on_missing_component(write_yaml):
    path = write_yaml(VALID.replace("- {target: events}", "- {target: event}"))
    refused(path, "components.web.dependencies[1].target", "dependency 'event' does not exist", "did you mean 'events'?")


def test_cache_fronting_missing_component(write_yaml):
    path = write_yaml(VALID.replace("fronts: db", "fronts: database"))
    refused(path, "components.cache.fronts", "'database' does not exist")


def test_cache_fronting_a_queue_is_refused(write_yaml):
    path = write_yaml(VALID.replace("fronts: db", "fronts: events"))
    refused(path, "components.cache.fronts", "'events' is a queue", "datastore")


def test_queue_consumer_missing(write_yaml):
    path = write_yaml(VALID.replace("consumer: worker", "consumer: workers"))
    refused(path, "components.events.consumer", "consumer 'workers' does not exist", "did you mean 'worker'?")


def test_placement_on_missing_node(write_yaml):
    path = write_yaml(VALID.replace("nodes: [node-1]", "nodes: [node-9]"))
    refused(path, "components.db.nodes[0]", "node 'node-9' does not exist", "node-1")


def test_node_pool_without_nodes(write_yaml):
    path = write_yaml(VALID.replace("replicas: 3", "node_pool: gpu"))
    refused(path, "components.web.node_pool", "no node is in pool 'gpu'", "default")


def test_endpoint_on_missing_service(write_yaml):
    path = write_yaml(VALID.replace("service: web", "service: frontend"))
    refused(path, "traffic.endpoints[0].service", "'frontend' does not exist")


def test_duplicate_node(write_yaml):
    path = write_yaml(VALID.replace("{name: node-2, zone: zone-b", "{name: node-1, zone: zone-b"))
    refused(path, "nodes", "node 'node-1' is defined twice")


def test_self_call(write_yaml):
    path = write_yaml(VALID.replace("dependencies: [{target: db}]", "dependencies: [{target: worker}]"))
    refused(path, "components.worker.dependencies[0].target", "calls itself")


def test_two_cycle_through_a_cache_edge(write_yaml):
    # web -> cache (dependency), cache -> web (cache miss): the cache is defined first, so the cycle starts there
    scenario = {
        "name": "loop",
        "nodes": [{"name": "node-1", "zone": "zone-a"}],
        "components": {
            "cache": {"kind": "cache", "fronts": "web", "service_time": {"mean": "1ms"}},
            "web": {"service_time": {"mean": "5ms"}, "dependencies": [{"target": "cache"}]},
        },
        "traffic": {"base_rate": "10/s", "endpoints": [{"name": "GET /", "service": "web"}]},
    }
    path = write_yaml(scenario)
    refused(path, "components.cache.fronts", "call cycle cache -> web -> cache", "remove one of these calls")
    # the same cycle with the service defined first is reported on its dependency
    scenario["components"] = dict(reversed(list(scenario["components"].items())))
    path = write_yaml(scenario, "reversed.yaml")
    refused(path, "components.web.dependencies[0].target", "call cycle web -> cache -> web")


def test_three_cycle_through_a_queue_edge(write_yaml):
    path = write_yaml(VALID.replace("dependencies: [{target: db}]", "dependencies: [{target: web}]"))
    error = refused(path, "components.web.dependencies[1].target", "call cycle web -> events -> worker -> web")
    assert "loop" in error.fix


def test_three_cycle_starting_at_the_queue(write_yaml, make_scenario):
    scenario = make_scenario()
    scenario["components"] = {
        "events": {"kind": "queue", "consumer": "worker", "service_time": {"mean": "1ms"}},
        "worker": {"service_time": {"mean": "1ms"}, "dependencies": [{"target": "web"}]},
        "web": {"service_time": {"mean": "1ms"}, "dependencies": [{"target": "events"}]},
    }
    refused(write_yaml(scenario), "components.events.consumer", "call cycle events -> worker -> web -> events")


def test_long_call_chain_has_no_recursion_limit(make_scenario):
    scenario = make_scenario()
    names = [f"s{i}" for i in range(3000)]
    scenario["components"] = {
        name: {"service_time": {"mean": "1ms"}, "dependencies": [{"target": nxt}] if nxt else []}
        for name, nxt in zip(names, names[1:] + [None])
    }
    scenario["traffic"]["endpoints"][0]["service"] = "s0"
    assert len(load_scenario(scenario).components) == 3000
    scenario["components"]["s2999"]["dependencies"] = [{"target": "s0"}]
    error = refused(scenario, "components.s0.dependencies[0].target", "call cycle s0 -> s1 -> ")
    assert error.problem.endswith("s2999 -> s0 (3000 calls)")
    assert len(str(error)) < 300


def test_unknown_kind(write_yaml):
    path = write_yaml(VALID.replace("kind: datastore", "kind: database"))
    refused(path, "components.db.kind", "unknown kind 'database'", "service, cache, datastore, queue")


def test_missing_required_field(write_yaml):
    path = write_yaml(VALID.replace("    service_time: {mean: 20ms}\n", ""))
    refused(path, "components.worker.service_time", "required field is missing", "add `service_time:`")


def test_invalid_name(write_yaml):
    path = write_yaml(VALID.replace("name: shop", "name: My Shop!"))
    refused(path, "name", "'My Shop!' is not a valid name", "lower-case")


def test_wrong_type_for_a_block(write_yaml):
    path = write_yaml(VALID.replace("service_time: {mean: 2ms}", "service_time: 2ms"))
    refused(path, "components.db.service_time", "expected a mapping of fields", "field: value")


def test_yaml_syntax_error_names_the_line(write_yaml):
    text = VALID.replace("    replicas: 3\n", "    replicas: [3\n")
    line = text.splitlines().index("    replicas: [3") + 1
    error = refused(write_yaml(text), error_line(text, line), "not valid YAML")
    assert error.path.startswith("line ")


def error_line(text: str, near: int) -> str:
    """The line PyYAML blames for an unclosed flow sequence opened on line `near` (it notices a little later)."""
    import yaml

    try:
        yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        assert mark.line + 1 >= near
        return f"line {mark.line + 1}"
    raise AssertionError("the text was expected to be invalid YAML")


def test_yaml_tab_indentation_names_the_line(write_yaml):
    path = write_yaml("name: shop\n\tnodes: []\n")
    refused(path, "line 2", "not valid YAML", "fix the syntax there")


def test_yaml_control_character(write_yaml):
    path = write_yaml("name: sh\x07op\n")
    refused(path, "character 8", "not valid YAML")


def test_yaml_number_too_long(write_yaml):
    path = write_yaml(VALID.replace("capacity: 10000", "capacity: " + "9" * 5000))
    refused(path, f"line {VALID.splitlines().index('    capacity: 10000') + 1}", "number too long")


def test_yaml_nested_too_deeply(write_yaml):
    path = write_yaml("name: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(path, "", "nested too deeply")


def test_unsafe_yaml_tag_is_refused(write_yaml):
    path = write_yaml("!!python/object/apply:os.system ['true']\n")
    refused(path, "line 1", "not valid YAML")


@pytest.mark.parametrize("text", ["- name: shop\n- nodes: []\n", "just text\n", "", "# only a comment\n", "42\n"])
def test_file_that_is_not_a_mapping(write_yaml, text):
    refused(write_yaml(text), "", "is not a mapping of fields", "name: my-system")


def test_missing_file(tmp_path):
    refused(tmp_path / "nope.yaml", "", "no such file or template", "YAML file")


def test_directory_instead_of_a_file(tmp_path):
    refused(tmp_path, "", "cannot be read")


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: café\n".encode("latin-1"))
    refused(path, "", "cannot be read", "UTF-8")


def test_empty_endpoints_list(write_yaml):
    text = VALID.split("  endpoints:\n")[0] + "  endpoints: []\n"
    refused(write_yaml(text), "traffic.endpoints", "at least 1", "add entries")


def test_empty_components(write_yaml, make_scenario):
    scenario = make_scenario()
    scenario["components"] = {}
    refused(write_yaml(scenario), "components", "at least 1")


@pytest.mark.parametrize("source", [None, 42, ["name", "shop"], b"name: shop"])
def test_source_of_the_wrong_type(source):
    with pytest.raises(ScenarioError) as info:
        load_scenario(source)
    assert str(info.value).startswith("<scenario>: ") and "is not a scenario" in str(info.value)


def test_dict_source_is_labelled(make_scenario):
    scenario = make_scenario()
    scenario["components"]["web"]["replicas"] = 0
    refused(scenario, "components.web.replicas", "0 is out of range", "at least 1")


def test_keys_with_line_breaks_stay_on_one_line(make_scenario):
    scenario = make_scenario()
    scenario["components"]["web"]["bad\nkey"] = 1
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert len(str(info.value).splitlines()) == 1
    assert "components.web" in info.value.path


def test_huge_numbers_give_a_short_message(make_scenario):
    scenario = make_scenario()
    scenario["components"]["web"]["replicas"] = 10**5000
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert info.value.path == "components.web.replicas" and len(str(info.value)) < 200


def test_yaml_alias_bomb_is_refused_quickly(write_yaml):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = write_yaml("\n".join(lines) + "\nname: *a8\nnodes: [*a8]\n")
    error = refused(path, "name", "expected text")
    assert len(str(error)) < 400


# --- templates and overrides -----------------------------------------------------------------------------------


def test_template_names_resolve(tmp_path, monkeypatch, make_scenario, write_yaml):
    folder = tmp_path / "templates"
    folder.mkdir()
    write_yaml(make_scenario(), "templates/mini.yaml")
    monkeypatch.setattr(loader, "templates", lambda: ["mini"])
    monkeypatch.setattr(loader, "template_path", lambda name: folder / f"{name}.yaml")
    scenario = load_scenario("mini")
    assert scenario.name == "shop"
    # a template's mistakes are labelled with its file name
    write_yaml({**make_scenario(), "bogus": 1}, "templates/broken.yaml")
    monkeypatch.setattr(loader, "templates", lambda: ["mini", "broken"])
    with pytest.raises(ScenarioError) as info:
        load_scenario("broken")
    assert str(info.value).startswith("broken.yaml: bogus: ")
    # an unknown name lists the templates there are
    with pytest.raises(ScenarioError) as info:
        load_scenario("maxi")
    assert "mini" in info.value.fix


def test_builtin_template_names_point_at_files():
    for name in templates():
        path = template_path(name)
        assert path.is_file() and path.name == f"{name}.yaml"
    assert template_path("x").parent.name == "templates"


def test_overrides_deep_merge(write_yaml):
    path = write_yaml(VALID)
    scenario = load_scenario(
        path,
        overrides={
            "components": {"web": {"replicas": 7, "service_time": {"cv": 2.0}}},
            "traffic": {"base_rate": "50/s"},
        },
    )
    web = scenario.components["web"]
    assert web.replicas == 7
    assert web.service_time.cv == 2.0 and web.service_time.mean == pytest.approx(0.005)  # sibling kept
    assert web.cpu == 0.5 and len(web.dependencies) == 2  # untouched fields kept
    assert set(scenario.components) == {"web", "cache", "db", "events", "worker"}
    assert scenario.traffic.base_rate == 50.0 and scenario.traffic.endpoints[0].service == "web"


def test_overrides_replace_lists_and_add_components(write_yaml):
    path = write_yaml(VALID)
    scenario = load_scenario(
        path,
        overrides={
            "components": {"web": {"dependencies": [{"target": "db"}]}, "extra": {"service_time": {"mean": "1ms"}}},
        },
    )
    assert [d.target for d in scenario.components["web"].dependencies] == ["db"]
    assert "extra" in scenario.components


def test_overrides_do_not_change_the_source(make_scenario):
    scenario = make_scenario()
    load_scenario(scenario, overrides={"components": {"web": {"replicas": 4}}})
    assert scenario == make_scenario()


def test_overrides_are_checked(write_yaml):
    path = write_yaml(VALID)
    refused(path, "components.web.replicas", "out of range", overrides={"components": {"web": {"replicas": 0}}})
    refused(path, "components.web.dependencies[0].target", "does not exist",
            overrides={"components": {"web": {"dependencies": [{"target": "nowhere"}]}}})


def test_overrides_must_be_a_mapping(write_yaml):
    path = write_yaml(VALID)
    refused(path, "", "overrides must be a mapping", overrides=["replicas", 3])


def test_scenario_error_fields():
    error = ScenarioError("shop.yaml", "components.web.replicas", "0 is out of range", "use a value at least 1")
    assert str(error) == "shop.yaml: components.web.replicas: 0 is out of range; use a value at least 1"
    assert (error.source, error.path, error.problem, error.fix) == (
        "shop.yaml", "components.web.replicas", "0 is out of range", "use a value at least 1")
    assert isinstance(error, ValueError)
    assert str(ScenarioError("shop.yaml", "", "is empty")) == "shop.yaml: is empty"
    assert "\n" not in str(ScenarioError("a\nb.yaml", "x\ny", "bad\nthing", "fix\r\nit"))


def test_a_key_with_a_dot_is_shown_in_brackets(make_scenario) -> None:
    scenario = make_scenario()
    scenario["api.v1"] = 1
    with pytest.raises(ScenarioError) as info:
        load_scenario(scenario)
    assert info.value.path == "['api.v1']"
