"""The web explorer: request validation, the JSON API over HTTP, and the page in headless Chromium."""

import io
import json
import shutil
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from playwright.sync_api import expect

from microforge.errors import MicroforgeError
from microforge.hull import in_hull
from microforge.serve.explorer import Explorer
from microforge.serve.server import start_server

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a root, offline machine (see the env notes): no sandbox, no GPU, no background
# networking that a closed network would refuse. Playwright adds --headless and a fresh profile.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def open_page(url: str):
    """A page of Debian's headless chromium at ``url`` (the test skips where chromium is missing)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    return Explorer("bundled:ti-sem-tiny", tmp_path_factory.mktemp("runs"), max_samples=6)


@pytest.fixture(scope="module")
def server(explorer):
    srv, _ = start_server(explorer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def centre(explorer):
    return {p["name"]: p["default"] for p in explorer.describe_model()["properties"]}


# ---------------------------------------------------------------------------- validation


def test_model_description_bounds_every_slider(explorer):
    d = explorer.describe_model()
    assert [p["name"] for p in d["properties"]] == ["YS", "TS", "EF", "RH", "IT", "DCS", "CFS"]
    assert d["properties"][0]["unit"] == "MPa" and d["has_regressor"] and d["two_stage"]
    for p in d["properties"]:
        assert p["min"] < p["default"] < p["max"] and 0 < p["step"] < (p["max"] - p["min"]) / 50
    assert explorer.check(centre(explorer))["in_hull"] is True


@pytest.mark.parametrize(
    "change,message",
    [
        ({"YS": "NaN"}, "value must be finite"),
        ({"YS": "abc"}, "'abc' is not a number"),
        ({"EF": 1e9}, "outside the model's range"),
        ({"TS": None}, "no value given"),
        ({"XX": 1.0}, "unknown properties XX"),
        ({"CFS": "inf"}, "value must be finite"),
        ({"YS": True}, "True is not a number"),
        ({"RH": False}, "False is not a number"),
    ],
)
def test_bad_targets_are_refused_with_the_property_named(explorer, change, message):
    target = {**centre(explorer), **change}
    with pytest.raises(MicroforgeError, match=message):
        explorer.check(target)


@pytest.mark.parametrize(
    "n,message",
    [
        (0, "1 to 6"),
        (7, "1 to 6"),
        (2.5, "whole number"),
        ("many", "whole number"),
        (-1, "1 to 6"),
        (True, "whole number"),
        (float("inf"), "whole number"),
        (1e400, "whole number"),
        (None, "whole number"),
    ],
)
def test_sample_count_is_bounded(explorer, n, message):
    with pytest.raises(MicroforgeError, match=message):
        explorer.generate({"target": centre(explorer), "n": n})


def test_random_targets_lie_in_the_hull(explorer):
    names = [p["name"] for p in explorer.describe_model()["properties"]]
    draws = np.array([[explorer.random_target(seed)[n] for n in names] for seed in range(5)])
    assert in_hull(explorer.hull, explorer.props.normalise(draws)).all()
    assert not np.allclose(draws[0], draws[1])


def test_missing_model_and_missing_properties_json_are_clear(tmp_path):
    with pytest.raises(MicroforgeError, match="model folder not found"):
        Explorer(str(tmp_path / "nothing"), tmp_path / "runs")
    from microforge.pipelines.registry import resolve_model

    copy = tmp_path / "model"
    shutil.copytree(resolve_model("bundled:ti-sem-tiny"), copy)
    (copy / "properties.json").unlink()
    with pytest.raises(MicroforgeError, match="properties.json: not found"):
        Explorer(str(copy), tmp_path / "runs")


# ---------------------------------------------------------------------------------- HTTP


def _post(url, body):
    req = urllib.request.Request(
        url,
        data=body if isinstance(body, bytes) else json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_api_generates_and_refuses_bad_requests(server, explorer):
    status, run = _post(server + "/api/generate", {"target": centre(explorer), "n": 2, "seed": 3})
    assert status == 200 and run["in_hull"] and len(run["samples"]) == 2
    s = run["samples"][0]
    assert set(s["predicted"]) == set(run["target"]) and "primary_alpha_fraction" in s["descriptors"]
    with urllib.request.urlopen(f"{server}/{s['image']}") as r:
        assert r.headers["Content-Type"] == "image/png" and r.read()[:4] == b"\x89PNG"
    with urllib.request.urlopen(f"{server}/{run['download']}") as r, zipfile.ZipFile(io.BytesIO(r.read())) as z:
        assert {"run.json", "sample_00.png", "sample_00_map.png", "sample_01.png"} <= set(z.namelist())
        assert not any(n.startswith(".") for n in z.namelist())
    assert _post(server + "/api/generate", b"{not json")[0] == 400
    status, err = _post(server + "/api/generate", {"target": {**centre(explorer), "YS": "NaN"}, "n": 1})
    assert status == 400 and "YS [MPa]" in err["error"]
    status, err = _post(server + "/api/generate", {"target": centre(explorer), "n": 1000})
    assert status == 400 and "1 to 6" in err["error"]
    for bad in ("/runs/../../etc/passwd", "/runs/x/../../config.json", "/nothing"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server + bad)
        assert e.value.code == 404


def _raw_post(server, path, body: bytes, length: str) -> tuple[int, dict]:
    """A POST with a hand-written Content-Length (urllib always sends the true one)."""
    import http.client
    from urllib.parse import urlparse

    u = urlparse(server)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.putrequest("POST", path)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", length)
    conn.endheaders()
    conn.send(body)
    r = conn.getresponse()
    return r.status, json.loads(r.read())


@pytest.mark.parametrize(
    "path,body,length,message",
    [
        ("/api/random-target", b'{"seed": 1.5}', None, "seed must be a non-negative whole number"),
        ("/api/random-target", b'{"seed": "x"}', None, "seed must be a non-negative whole number"),
        ("/api/random-target", b'{"seed": true}', None, "seed must be a non-negative whole number"),
        ("/api/check", b"{}", "abc", "Content-Length must be a non-negative whole number"),
        ("/api/check", b"{}", "-1", "Content-Length must be a non-negative whole number"),
        ("/api/generate", b'{"target": {"YS": NaN}}', None, "not valid JSON"),
    ],
)
def test_every_bad_request_gets_a_400_and_none_hangs(server, path, body, length, message):
    status, answer = _raw_post(server, path, body, length or str(len(body)))
    assert status == 400 and message in answer["error"]


def test_sample_count_1e400_is_a_400(server, explorer):
    body = json.dumps({"target": centre(explorer)})[:-1] + ', "n": 1e400}'
    status, answer = _raw_post(server, "/api/generate", body.encode(), str(len(body)))
    assert status == 400 and "whole number" in answer["error"]


# ------------------------------------------------------------------------------- browser


def test_page_in_headless_chromium(server, explorer, tmp_path):
    """Set a target, generate, see the images and the hull warning; bad input shows a message."""

    with open_page(server) as page:
        expect(page.locator("input[type=range]")).to_have_count(7)
        # a strong *and* ductile target: outside what the training data spans
        props = {p["name"]: p for p in explorer.describe_model()["properties"]}
        page.fill("#text-YS", str(props["YS"]["max"] * 0.999))
        page.fill("#text-EF", str(props["EF"]["max"] * 0.999))
        expect(page.locator("#banner")).to_contain_text("outside the convex hull")
        page.fill("#count", "3")
        page.click("#generate")
        expect(page.locator("img.micrograph")).to_have_count(3, timeout=120_000)
        expect(page.locator("img.map")).to_have_count(3)
        assert page.eval_on_selector("img.micrograph", "img => img.naturalWidth") == explorer.pipe.cfg.resolution
        expect(page.locator("#banner")).to_contain_text("outside the convex hull")
        assert page.get_attribute("#download", "href").endswith("run.zip")
        # bad input: a message, no request, the page keeps working
        page.fill("#text-TS", "NaN")
        page.click("#generate")
        expect(page.locator("#error")).to_contain_text("TS [MPa]: value must be finite")
        expect(page.locator("#text-TS")).to_have_class("bad")
        page.fill("#count", "500")
        page.fill("#text-TS", str(props["TS"]["default"]))
        page.click("#generate")
        expect(page.locator("#error")).to_contain_text("ask for 1 to 6 samples")
        # a random in-hull target clears the warning
        page.click("#random")
        expect(page.locator("#banner")).to_have_text("")
        expect(page.locator("#error")).to_be_hidden()


# ------------------------------------------------------------------------ feasible targets


def test_check_gives_each_property_the_interval_that_keeps_the_target_inside(explorer):
    t = centre(explorer)
    answer = explorer.check(t)
    assert answer["in_hull"] is True and set(answer["intervals"]) == set(t)
    props = {p["name"]: p for p in explorer.describe_model()["properties"]}
    for name, (lo, hi) in answer["intervals"].items():
        assert lo - 1e-6 <= t[name] <= hi + 1e-6 and lo < hi
        assert explorer.check(dict(t, **{name: lo + 0.5 * (hi - lo)}))["in_hull"] is True
        beyond = hi + 0.03 * (props[name]["max"] - props[name]["min"])
        if beyond <= props[name]["max"]:
            assert explorer.check(dict(t, **{name: beyond}))["in_hull"] is False


def test_nearest_feasible_target_moves_only_the_unlocked_properties(explorer):
    props = {p["name"]: p for p in explorer.describe_model()["properties"]}
    far = dict(centre(explorer), YS=props["YS"]["max"] * 0.999, EF=props["EF"]["max"] * 0.999)
    assert explorer.check(far)["in_hull"] is False and explorer.check(far)["intervals"]["YS"] is None
    free = explorer.nearest(far)
    assert explorer.check(free["target"])["in_hull"] is True and free["moved"] and free["locked"] == []
    kept = explorer.nearest(far, ["YS"])
    assert (
        kept["target"]["YS"] == far["YS"]
        and "YS" not in kept["moved"]
        and explorer.check(kept["target"])["in_hull"] is True
    )
    with pytest.raises(MicroforgeError, match="keeps YS, EF"):
        explorer.nearest(far, ["YS", "EF"])
    with pytest.raises(MicroforgeError, match="list of property names"):
        explorer.nearest(far, "YS")


def test_page_finds_the_nearest_feasible_target_and_its_banner_follows_the_sliders(server, explorer):

    props = {p["name"]: p for p in explorer.describe_model()["properties"]}
    with open_page(server) as page:
        expect(page.locator("#feasible-YS")).to_contain_text("inside the hull for")  # the hull's centre
        ys, ef = props["YS"]["max"] * 0.999, props["EF"]["max"] * 0.999
        page.fill("#text-YS", str(ys))
        page.fill("#text-EF", str(ef))
        expect(page.locator("#banner")).to_contain_text("outside the convex hull")
        expect(page.locator("#feasible-YS")).to_have_text("no value keeps the others inside the hull")
        # lock YS, project: YS stays, the banner clears, the page says what moved
        page.check("#lock-YS")
        page.click("#nearest")
        expect(page.locator("#moved")).to_contain_text("Moved to the nearest feasible target")
        expect(page.locator("#moved")).to_contain_text("kept: YS")
        expect(page.locator("#banner")).to_have_text("")
        assert float(page.input_value("#text-YS")) == pytest.approx(ys, rel=1e-4)
        assert float(page.input_value("#text-EF")) < ef
        # locking YS and EF together: no in-hull target keeps both, said in the error box
        page.fill("#text-EF", str(ef))
        page.check("#lock-EF")
        page.click("#nearest")
        expect(page.locator("#error")).to_contain_text("keeps YS, EF")
        # the banner describes the sliders, not the last run: a random in-hull target chosen while
        # an outside target is being generated leaves no warning when the run ends
        expect(page.locator("#banner")).to_contain_text("outside the convex hull")
        page.fill("#count", "1")
        page.click("#generate")
        page.click("#random")
        expect(page.locator("img.micrograph")).to_have_count(1, timeout=120_000)
        expect(page.locator("#banner")).to_have_text("")


def test_page_results_are_readable_and_a_pinned_run_compares(server, explorer):
    """Legend, scale bar, units, captions, per-sample regressor error, enlarge, seed, Enter, pin."""

    with open_page(server) as page:
        assert page.eval_on_selector("link[rel=icon]", "l => l.href").startswith(
            "data:image/svg+xml"
        )  # nothing fetched
        expect(page.locator("#props")).to_contain_text("J/cm²")
        page.fill("#count", "2")
        page.fill("#seed", "123")
        page.press("#seed", "Enter")  # Enter generates
        expect(page.locator("img.micrograph")).to_have_count(2, timeout=120_000)
        expect(page.locator("#results")).to_contain_text("seed 123")
        expect(page.locator(".legend")).to_contain_text("primary α")
        expect(page.locator("figcaption").first).to_have_text("stage-1 map 1")
        expect(page.locator(".scalebar-label").first).to_contain_text("µm")  # the bundled model knows its pixel size
        expect(page.locator(".sample table").first).to_contain_text("primary alpha [%]")
        expect(page.locator("table.predicted").first).to_contain_text("%")
        first = page.locator("img.micrograph").first.get_attribute("src")
        page.locator("img.micrograph").first.click()
        expect(page.locator("#zoom")).to_be_visible()
        assert page.get_attribute("#zoom img", "src").endswith(first)
        page.click("#zoom")
        expect(page.locator("#zoom")).to_be_hidden()
        # pin, change YS, generate again: both targets side by side
        page.click("#pin")
        ys = float(page.input_value("#text-YS"))
        page.fill("#text-YS", str(round(ys + 5, 1)))
        page.click("#generate")
        expect(page.locator("#compare")).to_contain_text("pinned", timeout=120_000)
        expect(page.locator("#compare tr", has_text="YS")).to_contain_text("5")
        expect(page.locator("#compare")).to_contain_text("(mean)")


def test_lath_orientation_spread_is_none_when_it_cannot_be_measured(explorer):
    one = np.zeros((64, 64), np.uint8)  # all beta but one secondary-alpha lath
    one[:] = 1
    one[20:24, 4:60] = 2
    assert explorer.measure(one)["lath_orientation_spread_deg"] is None


def test_progress_is_reported_between_batches(explorer):
    import threading

    seen, result = [], {}
    worker = threading.Thread(
        target=lambda: result.update(explorer.generate({"target": centre(explorer), "n": 6, "seed": 1}))
    )
    worker.start()
    while worker.is_alive():
        seen.append(explorer.progress())
        worker.join(0.01)
    assert {"done": 4, "total": 6, "running": True} in seen  # after the first batch of 4
    assert explorer.progress() == {"done": 6, "total": 6, "running": False} and len(result["samples"]) == 6


def test_page_says_when_the_server_is_gone(explorer):

    srv, _ = start_server(explorer, "127.0.0.1", 0)
    with open_page(f"http://127.0.0.1:{srv.server_port}/") as page:
        expect(page.locator("input[type=range]")).to_have_count(7)
        srv.shutdown()
        srv.server_close()
        page.click("#generate")
        expect(page.locator("#error")).to_contain_text("the microforge server does not answer")
