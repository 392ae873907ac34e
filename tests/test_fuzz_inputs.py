"""Hypothesis drives every numeric option of the sampling, evaluation and data commands, and every
field of the HTTP API, with NaN, infinities, negatives, huge values, booleans and text: the answer
is one ``Error: ...`` line (or a 400), never a traceback and never a 500."""

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from microforge.cli import cli
from microforge.serve.explorer import Explorer
from microforge.serve.server import start_server

BAD_TEXT = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "-7.5",
    "0",
    "1e400",
    "1e30",
    "99999999999999999999999",
    "true",
    "False",
    "abc",
    "",
    " ",
    "1,5",
]
TARGET = {"YS": "1000", "TS": "1080", "EF": "12", "RH": "37", "IT": "30", "DCS": "1450", "CFS": "0.2"}

# (command prefix, option): every numeric option of these commands; "{model}", "{bench}", "{out}" are filled in
OPTIONS = [
    *[
        (["generate", "--model", "{model}", "--out", "{out}"], o)
        for o in ("-n", "--steps", "--guidance", "--seed", "--batch-size", "--brightness")
    ],
    *[(["generate", "--model", "{model}", "--out", "{out}"], f"--prop {name}") for name in TARGET],
    *[
        (["evaluate", "--model", "{model}", "--data", "{bench}", "--report", "{out}"], o)
        for o in ("-n", "--n-reference", "--n-describe", "--batch-size", "--steps", "--guidance", "--seed", "--n-sweep")
    ],
    *[
        (["data", "synth", "--out", "{out}"], o)
        for o in ("--specimens", "--field-px", "--tile-size", "--overlap", "--seed", "--workers")
    ],
    (["data", "sheet", "{bench}", "--out", "{out}.png"], "--per-morphology"),
    *[(["characterize", "{bench}/tiles", "--out", "{out}"], o) for o in ("--pixel-size", "--figures")],
    *[(["serve", "--model", "{model}"], o) for o in ("--port", "--max-samples")],
]

# values that a command may legitimately accept for an option; the fuzz only sends values outside them
VALID = {
    "--seed": {"0"},
    "--guidance": {"0"},
    "--figures": {"0"},
    "--overlap": {"0"},
    "--port": {"0"},
    "--n-describe": {"0"},
}


def _args(prefix, option, value, model, bench, out):
    fill = lambda a: a.replace("{model}", str(model)).replace("{bench}", str(bench)).replace("{out}", str(out))  # noqa: E731
    args = [fill(a) for a in prefix]
    if option.startswith("--prop "):
        name = option.split()[1]
        props = {**TARGET, name: value}
        return args + [x for n, v in props.items() for x in ("--prop", f"{n}={v}")]
    extra = [x for n, v in TARGET.items() for x in ("--prop", f"{n}={v}")] if prefix[0] == "generate" else []
    return args + extra + [option, value]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(OPTIONS), value=st.sampled_from(BAD_TEXT))
def test_every_numeric_cli_option_fails_in_one_line(micro_model, tiny_bench, tmp_path_factory, case, value):
    prefix, option = case
    if value in VALID.get(option, set()):
        return
    out = tmp_path_factory.mktemp("fuzz") / "o"
    result = CliRunner().invoke(cli, _args(prefix, option, value, micro_model, tiny_bench.root, out))
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit), (
        result.output
    )
    assert result.exit_code == 1, (option, value, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (option, value, result.output)


@pytest.fixture(scope="module")
def api(micro_model, tmp_path_factory):
    srv, _ = start_server(Explorer(str(micro_model), tmp_path_factory.mktemp("runs"), max_samples=2), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


JSON_BAD = [
    float("nan"),
    float("inf"),
    -float("inf"),
    -1,
    -0.5,
    1e308,
    10**30,
    True,
    False,
    "abc",
    "",
    None,
    [],
    {},
    "1e400",
]


def _post(url: str, body: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(["n", "seed", "allow_extrapolation", *[f"target.{n}" for n in TARGET], "target"]),
    value=st.sampled_from(JSON_BAD),
    endpoint=st.sampled_from(["/api/generate", "/api/check", "/api/random-target"]),
)
@example(field="seed", value=None, endpoint="/api/random-target")  # an explicit null seed once passed as "no seed"
def test_every_api_field_gets_a_400(api, field, value, endpoint):
    if field == "allow_extrapolation" and isinstance(value, bool):
        return  # the two values it takes
    body = {"target": {n: float(v) for n, v in TARGET.items()}, "n": 1, "seed": 0}
    if field.startswith("target."):
        body["target"][field.split(".")[1]] = value
    else:
        body[field] = value
    text = json.dumps(body, allow_nan=True)  # NaN and Infinity as Python writes them: not valid JSON
    status, answer = _post(api + endpoint, text)
    assert status in (200, 400), (endpoint, field, value, status, answer)
    if status == 200:  # only fields the endpoint does not read may pass
        assert (
            (endpoint, field)
            in {
                ("/api/check", "n"),
                ("/api/check", "seed"),
                ("/api/check", "allow_extrapolation"),
                ("/api/random-target", "n"),
                ("/api/random-target", "allow_extrapolation"),
                ("/api/random-target", "target"),
            }
            or field.startswith("target.")
            and endpoint == "/api/random-target"
        ), (endpoint, field, value, answer)
    else:
        assert answer["error"] and "internal error" not in answer["error"]
