"""The listening page (``dmaster.page``) on the outputs of a real ``dmaster master`` run (a small untrained model):
what it lists, its previews, and, in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by
Selenium), that it loads without console errors, that its players decode, switch at the same position and match
levels as the reports say, and that its table shows the reports' numbers. A screenshot is kept in
``experiments/page/screenshot.png``."""

import contextlib
import io
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import soundfile as sf
from scipy.io import wavfile

from dmaster.audio import read_audio
from dmaster.checkpoint import save_checkpoint
from dmaster.cli import main
from dmaster.loudness import integrated_loudness
from dmaster.page import PAGE_NAME, is_preview, number, playable_source, unplayable, write_page
from dmaster.synth import music_like

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "experiments" / "page" / "screenshot.png"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_OPTIONS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
                  "--disable-dev-shm-usage")
SR = 44100


@pytest.fixture(scope="module")
def mastered(tmp_path_factory, estimator):
    """An output folder of ``dmaster master``: three inputs (16-bit WAV, AIFF, 32-bit float WAV at 384 kHz) and a
    broken one, then a fourth file in reference mode by a second run; the page written after each run.
    Returns ``(folder, failures, the first page's HTML)``."""
    root = tmp_path_factory.mktemp("page")
    model = root / "param.pt"
    save_checkpoint(model, estimator, "param", {}, step=0)
    album = root / "album"
    album.mkdir()
    sf.write(album / "01 first song.wav", 0.3 * music_like(2.5, SR, 2, seed=1).T.numpy(), SR, subtype="PCM_16")
    sf.write(album / "02 second.aiff", music_like(1.5, 48000, 2, seed=2).T.numpy(), 48000, subtype="PCM_24")
    wavfile.write(album / "03 high rate.wav", 384000, music_like(0.5, 384000, 1, seed=3)[0].numpy())
    broken = album / "04 broken.mp3"
    broken.write_bytes(b"not audio at all")
    out = root / "out"
    told = io.StringIO()
    with contextlib.redirect_stderr(told):
        code = main(["master", str(album), "-o", str(out), "--model", str(model), "--target-lufs", "-14", "--html"])
    assert code == 1
    written = (out / "index.html").read_text(encoding="utf-8")  # --html: the command writes it, failures listed
    assert "04 broken.mp3" in written and (out / "01 first song_mastered.png").is_file()
    failures = [(broken, line[len(f"{broken}: "):]) for line in told.getvalue().splitlines()
                if line.startswith(f"{broken}: ")]
    assert failures, told.getvalue()
    first = write_page(out, failures).read_text(encoding="utf-8")
    sf.write(root / "reference.wav", music_like(1.5, SR, 2, seed=9).T.numpy(), SR)
    (root / "later").mkdir()
    sf.write(root / "later" / "05 matched.wav", music_like(2.5, SR, 2, seed=4).T.numpy(), SR)
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["master", str(root / "later" / "05 matched.wav"), "-o", str(out), "--model", str(model),
                     "--reference", str(root / "reference.wav"), "--plot"]) == 0
    write_page(out, failures)
    return out, failures, first


def reports(folder: Path) -> dict[str, dict]:
    """The reports in ``folder`` by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*_mastered*.json"))}


def rows(page: str) -> list[str]:
    """The album table's rows, as the report names they carry."""
    return re.findall(r'<tr data-track="t\d+" data-report="([^"]+)"', page)


def test_the_page_lists_every_report_and_a_rerun_keeps_earlier_rows(mastered):
    out, failures, first = mastered
    page = (out / PAGE_NAME).read_text(encoding="utf-8")
    assert rows(first) == ["01 first song_mastered.json", "02 second_mastered.json", "03 high rate_mastered.json"]
    assert rows(page) == rows(first) + ["05 matched_mastered.json"]
    assert "http://" not in page and "https://" not in page and "<script src" not in page  # self-contained
    assert "../album/01%20first%20song.wav" in page  # inputs relative to the page
    ((path, reason),) = failures
    assert str(path) in page and reason.split(":")[0] in page


def test_unfinished_reports_missing_files_and_an_empty_folder(tmp_path, mastered):
    out, _, _ = mastered
    assert "No reports of dmaster master in this folder" in write_page(tmp_path).read_text(encoding="utf-8")
    claim = {"note": "dmaster master was writing this file's outputs; a rerun redoes them",
             "files": {"input": str(tmp_path / "gone.wav"), "mastered": "gone_mastered.wav",
                       "report": "gone_mastered.json", "plot": None}}
    (tmp_path / "gone_mastered.json").write_text(json.dumps(claim))
    report = json.loads((out / "01 first song_mastered.json").read_text())
    report["files"]["input"] = str(tmp_path / "moved.wav")  # the input moved away, the output still there
    (tmp_path / "01 first song_mastered.json").write_text(json.dumps(report))
    shutil.copyfile(out / report["files"]["mastered"], tmp_path / report["files"]["mastered"])
    (tmp_path / "other.json").write_text("{}")  # not a report of dmaster master: left out
    page = write_page(tmp_path).read_text(encoding="utf-8")
    assert rows(page) == ["gone_mastered.json", "01 first song_mastered.json"]  # by input path
    assert "not finished: the run writing it was stopped" in page
    assert "input not found at moved.wav" in page and 'data-source="input"' not in page
    assert page.count('data-source="output"') == 1


@pytest.mark.parametrize("make, reason", [
    (lambda p: sf.write(p.with_suffix(".wav"), np.zeros((10, 2)), 44100, subtype="PCM_16"), None),
    (lambda p: sf.write(p.with_suffix(".wav"), np.zeros((10, 2)), 44100, subtype="PCM_24"), None),
    (lambda p: wavfile.write(p.with_suffix(".wav"), 48000, np.zeros((10, 2), np.float32)), None),
    (lambda p: sf.write(p.with_suffix(".flac"), np.zeros((10, 2)), 192000), None),
    (lambda p: sf.write(p.with_suffix(".ogg"), np.zeros((4410, 2)), 44100), None),
    (lambda p: sf.write(p.with_suffix(".aiff"), np.zeros((10, 2)), 44100), "AIFF"),
    (lambda p: wavfile.write(p.with_suffix(".wav"), 44100, np.zeros((10, 2))), "64-bit float WAV"),
    (lambda p: wavfile.write(p.with_suffix(".wav"), 384000, np.zeros((10, 2), np.float32)),
     "32-bit float WAV at 384 kHz"),
    (lambda p: sf.write(p.with_suffix(".wav"), np.zeros((10, 2)), 44100, subtype="PCM_U8"), "8-bit WAV"),
])
def test_what_a_browser_is_taken_to_play(tmp_path, make, reason):
    make(tmp_path / "clip")
    (path,) = tmp_path.iterdir()
    assert unplayable(path) == reason


def test_previews_are_made_once_and_matched_at_their_own_loudness(mastered):
    out, failures, _ = mastered
    data = json.loads(re.search(r'<script type="application/json" id="tracks">(.*?)</script>',
                                (out / PAGE_NAME).read_text(encoding="utf-8")).group(1))
    previews = {source["url"]: source for track in data for source in track["sources"].values()
                if source["url"].endswith("_preview.flac")}
    assert set(previews) == {"02%20second_mastered_input_preview.flac", "03%20high%20rate_mastered_input_preview.flac",
                             "03%20high%20rate_mastered_preview.flac"}
    for url, source in previews.items():
        path = out / unquote(url)
        assert sf.info(str(path)).subtype == "PCM_24" and sf.info(str(path)).samplerate <= 96000
        audio, rate = read_audio(path)  # the page plays it at the loudness it has (band-limited, turned down)
        assert integrated_loudness(audio, rate) == pytest.approx(source["lufs"] + source["offset_db"], abs=0.01)
        assert abs(source["offset_db"]) < 0.5  # band-limited, nothing turned down here
    page = (out / PAGE_NAME).read_text(encoding="utf-8")
    assert "browsers do not play AIFF" in page and "browsers do not play 32-bit float WAV at 384 kHz" in page
    assert all(is_preview(out / unquote(url)) for url in previews)
    assert not is_preview(out / "01 first song_mastered.wav") and not is_preview(out / PAGE_NAME)
    made = {url: (out / unquote(url)).stat().st_mtime_ns for url in previews}
    write_page(out, failures)
    assert {url: (out / unquote(url)).stat().st_mtime_ns for url in previews} == made
    assert (out / PAGE_NAME).read_text(encoding="utf-8") == page


def test_a_preview_of_audio_over_full_scale_is_turned_down_and_the_page_makes_up_for_it(tmp_path):
    clip = 2.0 * music_like(0.5, SR, 2, seed=6) / music_like(0.5, SR, 2, seed=6).abs().max()  # peak +6 dBFS
    wavfile.write(tmp_path / "loud.wav", SR, clip.T.numpy().astype(np.float64))
    lufs = integrated_loudness(clip, SR)
    source = playable_source(tmp_path, tmp_path / "loud.wav", tmp_path / "loud_mastered_input_preview.flac", lufs,
                             "input")
    assert source.url == "loud_mastered_input_preview.flac"
    assert "64-bit float WAV" in source.note and "6.1 dB quieter" in source.note
    assert source.offset_db == pytest.approx(-6.12, abs=0.02)
    audio, rate = read_audio(tmp_path / source.url)
    assert float(audio.abs().max()) < 1.0


# -- in the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver, offline, with a fresh profile; skipped where either is absent
    (failed instead where ``DMASTER_REQUIRE_BROWSER`` is set, as ``.ci/run`` does where it installs them)."""
    missing = pytest.fail if os.environ.get("DMASTER_REQUIRE_BROWSER") else pytest.skip
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install -e '.[test]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not CHROMEDRIVER.is_file():
        missing("headless Chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (*CHROME_OPTIONS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(30)
    driver.set_window_size(1280, 1500)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, mastered):
    """The page open in the browser; the console's messages of its loading kept as ``browser.loading_log``."""
    out, _, _ = mastered
    browser.get((out / PAGE_NAME).as_uri())
    browser.execute_async_script("const done = arguments[0]; (function wait() { "
                                 "window.dmasterPage ? done() : setTimeout(wait, 20); })();")
    browser.loading_log = browser.get_log("browser")
    return browser


def console_errors(entries: list[dict]) -> list[str]:
    """The console's errors (uncaught exceptions, failed loads)."""
    return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]


def script(driver, code: str, *args):
    """Run ``code`` as an async script: it ends by calling ``done(value)``; a rejected promise fails the test."""
    result = driver.execute_async_script("const done = arguments[arguments.length - 1];" + code, *args)
    if isinstance(result, dict) and "error" in result:
        raise AssertionError(result["error"])
    return result


def test_the_page_loads_without_console_errors(page):
    assert not console_errors(page.loading_log), page.loading_log
    assert page.execute_script("return dmasterPage.tracks.length") == 4
    assert not page.execute_script("return document.querySelectorAll('audio').length")  # made on first use


def test_the_album_table_shows_the_reports_numbers_and_marks(page, mastered):
    out, failures, _ = mastered
    table = page.execute_script("""return [...document.querySelectorAll('#album tbody tr')].map(r => ({
        report: r.dataset.report, marks: [...r.querySelectorAll('.mark')].map(m => m.className).join(' '),
        cells: Object.fromEntries([...r.querySelectorAll('td[data-field]')].map(c => [c.dataset.field,
                                                                                    c.textContent]))}))""")
    written = reports(out)
    assert [row["report"] for row in table] == list(written)
    for row in table:
        report = written[row["report"]]
        for name, shown in row["cells"].items():
            section, key = name.split(".")
            assert shown == number(report[section].get(key)), (row["report"], name)
        level = report["output"]
        assert ("missed" in row["marks"]) == ("target_missed" in level)
        assert ("ceiling" in row["marks"]) == (level["true_peak_dbtp"] >= level["peak_ceiling_db"] - 0.1)
    listed = page.execute_script("return [...document.querySelectorAll('#failures li')].map(li => li.textContent)")
    assert listed == [f"{path}: {reason}" for path, reason in failures]
    assert not console_errors(page.get_log("browser"))


def test_every_player_decodes_to_the_files_durations(page, mastered):
    out, _, _ = mastered
    for track in page.execute_script("return dmasterPage.tracks"):
        durations = script(page, "dmasterPage.player(arguments[0]).ready().then(done, e => done({error: String(e)}))",
                           track["id"])
        assert set(durations) == set(track["sources"]) >= {"input", "output"}
        for name, source in track["sources"].items():
            path = (out / unquote(source["url"])).resolve()
            assert durations[name] == pytest.approx(sf.info(str(path)).duration, abs=0.005), (track["id"], name)
    assert "reference" in track["sources"]  # the reference-mode track, last
    assert not console_errors(page.get_log("browser"))


def gains_heard(page, track_id: str) -> dict[str, float]:
    """The volume (dB) of each of a player's sources when it is the one heard (switched to it, paused)."""
    return script(page, """const p = dmasterPage.player(arguments[0]); p.ready().then(() => {
        const was = p.active, heard = {};
        for (const n in p.audio) { p.use(n); heard[n] = 20 * Math.log10(p.audio[n].volume); }
        p.use(was); done(heard); })""", track_id)


def test_the_level_matching_gain_is_the_reports_loudness_difference(page):
    from selenium.webdriver.common.by import By

    for track in page.execute_script("return dmasterPage.tracks"):
        sources = track["sources"]
        gains = gains_heard(page, track["id"])
        heard = {name: source["lufs"] + source["offset_db"] + gains[name] for name, source in sources.items()}
        assert max(heard.values()) - min(heard.values()) < 0.1, (track["id"], heard)  # all at one loudness
        louder, quieter = sorted(("input", "output"), key=lambda name: -sources[name]["lufs"])
        difference = sources[louder]["lufs"] - sources[quieter]["lufs"]
        gain = gains[louder] - gains[quieter] + sources[louder]["offset_db"] - sources[quieter]["offset_db"]
        assert gain == pytest.approx(-difference, abs=0.1)  # the louder turned down by the difference
        text = page.find_element(By.CSS_SELECTOR, f'.player[data-track="{track["id"]}"] .gain').text
        if "reference" not in sources:
            assert f"{sources[louder]['label']} {-difference:.2f} dB" in text, text
        match = page.find_element(By.CSS_SELECTOR, f'.player[data-track="{track["id"]}"] .match')
        match.click()  # matching off: as mastered
        gains = gains_heard(page, track["id"])
        played = {name: sources[name]["lufs"] + sources[name]["offset_db"] + gains[name] for name in sources}
        assert played["output"] - played["input"] == pytest.approx(sources["output"]["lufs"] - sources["input"]["lufs"],
                                                                   abs=0.01)
        assert "not matched" in page.find_element(By.CSS_SELECTOR, f'.player[data-track="{track["id"]}"] .gain').text
        match.click()
    assert not console_errors(page.get_log("browser"))


def positions(page, track_id: str) -> dict:
    """The player's state: the source heard, whether it plays, every element's position and volume."""
    return page.execute_script("""const p = dmasterPage.player(arguments[0]); return {active: p.active,
        paused: p.paused(), wall: performance.now() / 1000,
        times: Object.fromEntries(Object.entries(p.audio).map(([n, a]) => [n, a.currentTime])),
        volumes: Object.fromEntries(Object.entries(p.audio).map(([n, a]) => [n, a.volume]))}""", track_id)


def spread(state: dict) -> float:
    """How far apart the player's sources are (s)."""
    return max(state["times"].values()) - min(state["times"].values())


def wait_until_in_step(page, track_id: str) -> dict:
    """Wait (up to 5 s) until the player has played 0.3 s with its sources less than 20 ms apart."""
    for _ in range(250):
        state = positions(page, track_id)
        if not state["paused"] and state["times"][state["active"]] > 0.3 and spread(state) < 0.02:
            return state
        time.sleep(0.02)
    raise AssertionError(f"{track_id} did not play: {state}")


@pytest.mark.parametrize("track_id, keys", [("t1", "abxb"), ("t4", "rab")])
def test_the_switch_keeps_the_position(page, track_id, keys):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page.find_element(By.CSS_SELECTOR, f'.player[data-track="{track_id}"] .play').click()  # a click: the gesture
    started = wait_until_in_step(page, track_id)
    for key in keys:
        before = positions(page, track_id)
        ActionChains(page).send_keys(key).perform()
        after = positions(page, track_id)
        heard = after["active"]
        assert heard == {"a": "input", "b": "output", "r": "reference", "x": "input" if before["active"] == "output"
                         else "output"}[key]
        assert [name for name, volume in after["volumes"].items() if volume > 1e-3] == [heard]  # others -100 dB
        assert spread(after) < 0.05, (before, after)  # every source at the same position
        elapsed = after["wall"] - before["wall"]
        was = before["times"][before["active"]]
        assert was - 0.05 < after["times"][heard] < was + elapsed + 0.05, (before, after)
        time.sleep(0.15)
    assert after["times"][heard] - started["times"][started["active"]] > 0.1 * len(keys)  # played on throughout
    ActionChains(page).send_keys(" ").perform()  # space: pause
    assert positions(page, track_id)["paused"]
    assert not console_errors(page.get_log("browser"))


def test_keys_turn_matching_off_and_move_between_tracks(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page.find_element(By.CSS_SELECTOR, "#t2 h2").click()  # a click in a track's section chooses it
    state = "return [document.querySelector('.track.current').id, dmasterPage.player('t2').matched]"
    assert page.execute_script(state) == ["t2", True]
    ActionChains(page).send_keys("m").perform()
    assert page.execute_script(state) == ["t2", False]
    assert not page.find_element(By.CSS_SELECTOR, "#t2 .match").is_selected()
    ActionChains(page).send_keys("m").send_keys("n").perform()
    assert page.execute_script(state) == ["t3", True]
    page.find_element(By.CSS_SELECTOR, '#album th[title="output.loudness_lufs"]').click()  # sorted by it
    shown = page.execute_script(
        "return [...document.querySelectorAll('#album td[data-field=\"output.loudness_lufs\"]')]"
        ".map(c => parseFloat(c.textContent))")
    assert shown == sorted(shown) and len(shown) == 4
    assert not console_errors(page.get_log("browser"))


def test_a_screenshot_is_kept(page, tmp_path):
    page.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert page.save_screenshot(str(tmp_path / "page.png"))
    shutil.copyfile(tmp_path / "page.png", SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 10_000


def test_previews_written_into_the_input_folder_are_never_inputs(tmp_path, estimator):
    model = tmp_path / "param.pt"
    save_checkpoint(model, estimator, "param", {}, step=0)
    album = tmp_path / "album"
    album.mkdir()
    sf.write(album / "song.aiff", music_like(1.5, SR, 2, seed=2).T.numpy(), SR, subtype="PCM_24")  # gets a preview
    command = ["master", str(album), "-o", str(album), "--model", str(model), "--html"]
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(command) == 0
    assert any(is_preview(path) for path in album.iterdir())
    told = io.StringIO()
    with contextlib.redirect_stderr(told):
        assert main(command) == 0
    assert "1 file into" in told.getvalue() and "1 already done" in told.getvalue()
