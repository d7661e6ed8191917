"""The dataset factory end to end: every item verifies its own answer at 1.0 and a wrong one below, nothing an agent
sees names the fault, the same arguments give the same files, an item is rebuilt from its record, the `datasets`
library loads the shards, and bad arguments end in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from opsworld.dataset import CLASSES, TASKS, DatasetError, regenerate, verify, write_dataset
from opsworld.dataset.command import dataset
from opsworld.dataset.factory import OBSERVED, SCHEMA, Spec, as_table, make_items
from opsworld.envs.worlds import world_from_record

SERVICES = (5, 30)          # small systems keep the file quick
# (difficulty, seed, block, worlds, template) drawn beside the written dataset: several systems, every difficulty
SAMPLES = [("easy", 1, 0, 60, None), ("easy", 1, 3, 40, None), ("hard", 2, 0, 60, None),
           ("0.5,0.5,0.5,0.5", 3, 1, 40, None), ("hard", 4, 0, 40, "online-shop")]
REAL_WORDS = {"crashloop": ("crashloopbackoff",)}     # a class name that is also a word kubectl prints


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("medium")
    write_dataset(120, out, seed=7, difficulty="medium", shard_size=50, workers=1, services=SERVICES,
                  items_per_world=40)
    rows = [r for f in sorted(out.glob("train-*.parquet")) for r in pq.read_table(f).to_pylist()]
    return out, rows


@pytest.fixture(scope="module")
def sample(written) -> list[dict]:
    """The written items and more from other systems and difficulties, each as read back from Parquet."""
    rows = list(written[1])
    for difficulty, seed, block, worlds, template in SAMPLES:
        made = make_items(Spec(seed=seed, difficulty=difficulty, services=SERVICES, template=template), block,
                          range(worlds))
        rows += as_table(made).to_pylist()
    return rows


def _wrong(item: dict) -> str:
    """An answer that is not the ground truth."""
    grading = json.loads(item["grading"])
    if item["task"] == "localize":
        roots = set(grading["roots"])
        return next((c["name"] for c in item["service_map"] if c["name"] not in roots), "no-such-component")
    if item["task"] == "classify":
        return next(c for c in CLASSES if c != item["answer"])
    return next(o["label"] for o in grading["options"] if o["score"] < 1.0)


def test_the_files_are_as_asked(written) -> None:
    out, rows = written
    shards = sorted(p.name for p in out.glob("train-*.parquet"))
    assert shards == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert len(rows) == 120 and len({r["id"] for r in rows}) == 120
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["items"] == 120 and summary["shards"] == shards and sum(summary["tasks"].values()) == 120
    assert summary["worlds"] == 3 and len({json.loads(r["world"])["record"]["seed"] for r in rows}) == 3
    assert summary["difficulty"]["name"] == "medium" and summary["difficulty"]["telemetry_gaps"] > 0
    assert pq.read_schema(out / shards[0]).remove_metadata().equals(SCHEMA)


def test_every_item_verifies_its_answer_and_not_a_wrong_one(sample) -> None:
    assert {r["task"] for r in sample} == set(TASKS)
    assert {r["difficulty"]["name"] for r in sample} >= {"easy", "medium", "hard", "0.5,0.5,0.5,0.5"}
    for item in sample:
        assert verify(item, item["answer"]) == 1.0, item["id"]
        wrong = verify(item, _wrong(item))
        assert 0.0 <= wrong < 1.0, (item["id"], _wrong(item))
        assert verify(item, "") == 0.0 and verify(item, "no idea") < 1.0


def test_answers_may_be_written_the_way_models_write_them(sample) -> None:
    for item in sample:
        a = item["answer"]
        key = {"localize": "component", "classify": "fault_class", "mitigate": "option"}[item["task"]]
        for written in (f"  {a.upper()} \n", f"'{a}'.", json.dumps({key: a}), f"```json\n{json.dumps({key: a})}\n```"):
            assert verify(item, written) == 1.0, (item["id"], written)
        if item["task"] == "mitigate":
            right = next(o for o in json.loads(item["grading"])["options"] if o["label"] == a)
            assert verify(item, right["text"]) == 1.0
            assert verify(item, {"action": right["action"], "target": right["target"]}) == 1.0
        if item["task"] == "localize" and len(json.loads(item["grading"])["roots"]) == 1:
            assert verify(item, f"{a}, {_wrong(item)}") < 1.0       # naming more than the root costs


def test_partial_credit_is_for_near_misses_only(sample) -> None:
    near = [i for i in sample if i["task"] == "localize" and len(json.loads(i["grading"])["roots"]) == 1
            and any(json.loads(i["grading"])["near"].values())]
    assert near
    for item in near:
        credit = next(iter(json.loads(item["grading"])["near"].values()))
        place, score = max(credit.items(), key=lambda kv: kv[1])
        assert 0.0 < verify(item, place) == score <= 0.5


def _forbidden(item: dict, names: dict) -> set[str]:
    truth = json.loads(item["truth"])
    record = json.loads(item["world"])["record"]
    key = json.dumps(record, sort_keys=True)
    if key not in names:
        names[key] = world_from_record(record).scenario.name
    words = {truth["kind"], truth["fault_class"].lower(), truth["entry"], names[key], "inject", "chaos"}
    return {w.lower() for w in words if w} | {a["kind"] for a in truth["also"]}


def _seen(item: dict) -> str:
    """Everything an agent is shown, less the fixed list of failure modes a classify item offers."""
    parts = []
    for column in OBSERVED:
        value = item[column]
        if column == "options" and item["task"] == "classify":
            continue
        parts.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(parts).replace(", ".join(CLASSES), "").lower()


def test_nothing_an_agent_sees_names_the_fault(sample) -> None:
    names: dict = {}
    for item in sample:
        seen = _seen(item)
        for word in sorted(_forbidden(item, names)):
            text = seen
            for real in REAL_WORDS.get(word, ()):
                text = text.replace(real, "")
            assert word not in text, (item["id"], word, re.findall(rf".{{0,60}}{re.escape(word)}.{{0,60}}", text)[:2])


def test_the_bundle_reads_like_production_telemetry(sample) -> None:
    item = next(i for i in sample if i["alerts"] and i["logs"])
    prompt = item["prompt"]
    for section in ("== Firing alerts ==", "== Recent changes", "== Key metrics", "== Log excerpts",
                    "== Service map (as documented) ==", "== Task =="):
        assert section in prompt
    assert "http_server_requests_total{namespace=\"prod\"" in prompt
    assert re.search(r"^FIRING  \w+  severity=(critical|warning)  \{namespace=\"prod\", service=\"", prompt, re.M)
    line = item["logs"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) and line["level"] in ("WARN", "ERROR")
    assert all(len(m["values"]) == len(item["metric_times"]) for m in item["metrics"])
    assert all(r["alerts_firing"] >= len(r["alerts"]) for r in sample)


def test_telemetry_gaps_lose_samples_only_when_asked(sample) -> None:
    def lost(rows: list[dict]) -> float:
        values = [v for r in rows for m in r["metrics"] for v in m["values"]]
        return sum(v is None for v in values) / len(values)

    easy = [r for r in sample if r["difficulty"]["telemetry_gaps"] == 0]
    gappy = [r for r in sample if r["difficulty"]["telemetry_gaps"] >= 0.5]     # 15% or more of them lost
    assert lost(gappy) > 0.1 > 0.02 > lost(easy)


def test_the_same_arguments_give_the_same_files(written, tmp_path) -> None:
    out, _ = written
    # two processes share the three systems: the items do not depend on who made them
    write_dataset(120, tmp_path, seed=7, difficulty="medium", shard_size=50, workers=2, services=SERVICES,
                  items_per_world=40)
    for f in sorted(out.glob("train-*.parquet")) + [out / "dataset.json"]:
        assert (tmp_path / f.name).read_bytes() == f.read_bytes(), f.name


def test_an_item_is_rebuilt_from_its_world_record(written) -> None:
    rows = written[1]
    for item in (rows[0], rows[57], rows[-1]):
        again = as_table([regenerate(item)]).to_pylist()[0]
        assert again == item


def test_the_datasets_library_loads_the_shards(written, tmp_path) -> None:
    datasets = pytest.importorskip("datasets")
    out, rows = written
    loaded = datasets.load_dataset("parquet", data_files=str(out / "train-*.parquet"), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == len(rows) and set(loaded.column_names) == set(SCHEMA.names)
    for i in (0, 61, len(rows) - 1):
        row = loaded[i]
        assert row["id"] == rows[i]["id"] and row["prompt"] == rows[i]["prompt"]
        assert verify(row, row["answer"]) == 1.0 and verify(row, _wrong(row)) < 1.0


@pytest.mark.parametrize("args, words", [
    ({"n": 0}, "at least 1"),
    ({"difficulty": "extreme"}, "difficulty 'extreme'"),
    ({"difficulty": "0.1,2,0,0"}, "[0, 1]"),
    ({"services": (40, 5)}, "services"),
    ({"template": "no-such-template"}, "no-such-template"),
])
def test_bad_arguments_say_what_is_wrong_in_one_line(tmp_path, args, words) -> None:
    with pytest.raises(DatasetError) as exc:
        write_dataset(**{"n": 10, "out": tmp_path, **args})
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_an_unwritable_directory_is_refused(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DatasetError, match="cannot write to"):
        write_dataset(10, blocker / "out")


def test_the_command_exits_2_with_one_line(tmp_path) -> None:
    app = typer.Typer()
    app.command("dataset")(dataset)
    app.command("other")(lambda: None)       # two commands: the app takes the command's name, as the real CLI
    runner = CliRunner()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for argv in (["--n", "0", "--out", str(tmp_path)], ["--n", "5", "--out", str(tmp_path), "--difficulty", "x"],
                 ["--n", "5", "--out", str(blocker / "d")], ["--n", "5", "--out", str(tmp_path), "--services", "a"]):
        result = runner.invoke(app, ["dataset", *argv])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("error:")
    ok = runner.invoke(app, ["dataset", "--n", "3", "--out", str(tmp_path / "ok"), "--services", "5-12",
                             "--workers", "1", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["items"] == 3 and (tmp_path / "ok" / "train-00000-of-00001.parquet").exists()
