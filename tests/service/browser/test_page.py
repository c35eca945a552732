"""The page at ``/`` driven in headless Chromium against a real embedded server: a generation that
plays in the page and downloads, a 2-step training whose version joins the model list, the jobs
list, bad input showing the API's own message, and the API key kept out of every URL."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
from PIL import Image

from .browser_support import EmbeddedServer, OutsideWorld, base_settings

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOT = ROOT / "docs" / "figures" / "ui.png"
JOB_TIMEOUT_S = 300
KEY = "alice-page-key-0123456789abcdef"
MODEL = "toc-sim:bundled"


def wait(browser, script: str, timeout_s: float = 30):
    """Until ``script`` returns something truthy; returns it."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout_s, poll_frequency=0.2).until(lambda d: d.execute_script(script))


def by_id(browser, element_id: str):
    return browser.find_element("id", element_id)


def fill(browser, element_id: str, value: object) -> None:
    field = by_id(browser, element_id)
    field.clear()
    field.send_keys(str(value))


def choose(browser, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_id(browser, element_id)).select_by_value(value)


def script_errors(browser) -> list[str]:
    """Uncaught errors of the page's scripts since the last call (answers of 4xx are the network's, not these)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["source"] == "javascript"]


def open_page(browser, server: EmbeddedServer) -> None:
    script_errors(browser)
    browser.get(server.url + "/")
    wait(browser, "return document.querySelectorAll('#gen-model option').length > 0")


def set_formats(browser, formats: set[str]) -> None:
    for box in browser.find_elements("css selector", "input[name=formats]"):
        if box.is_selected() != (box.get_attribute("value") in formats):
            box.click()


def recording_tiff(path: Path, frames: int = 16, size: int = 32) -> Path:
    """What POST /train takes at the least for a 16x32x32 model: 16 frames of 32x32, uint16."""
    video = np.random.default_rng(0).integers(1000, 3000, (frames, size, size), dtype=np.uint16)
    tifffile.imwrite(path, video)
    return path


def fill_training(browser, recording: Path, name: str, steps: int) -> None:
    """The smallest training: fine-tune the bundled model, batch 2, one critic step, a checkpoint each step."""
    by_id(browser, "train-files").send_keys(str(recording))
    fill(browser, "train-name", name)
    choose(browser, "train-base", MODEL)
    fill(browser, "train-steps", steps)
    fill(browser, "train-checkpoint", 1)
    browser.find_element("css selector", "#train-form details summary").click()
    fill(browser, "train-batch", 2)
    fill(browser, "train-ncritic", 1)
    choose(browser, "train-patches", "grid")


@pytest.fixture(scope="module")
def server_keys_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    settings = base_settings(tmp_path_factory.mktemp("keys-on"), api_keys=f"alice:{KEY}")
    with EmbeddedServer(settings) as server:
        yield server


def test_a_generation_plays_in_the_page_and_downloads(browser, outside_world: OutsideWorld, server_keys_off: EmbeddedServer):
    open_page(browser, server_keys_off)
    assert not by_id(browser, "key-form").is_displayed()  # keys off: no prompt
    outside_world.take()
    choose(browser, "gen-model", MODEL)
    wait(browser, "const i = document.getElementById('model-samples'); return !i.hidden && i.complete && i.naturalWidth > 0")
    assert "Status:" in by_id(browser, "model-summary").text  # the bundled model card's status line
    fill(browser, "gen-seed", 7)
    fill(browser, "gen-frames", 16)
    fill(browser, "gen-count", 1)
    set_formats(browser, {"ome-tiff", "mp4"})
    by_id(browser, "gen-submit").click()

    state = wait(browser, """
        const error = document.getElementById('gen-error').textContent;
        const video = document.querySelector('#gen-results video');
        if (error) return 'error: ' + error;
        return video && video.readyState === 4 && video.duration > 0 && 'playing';
    """, JOB_TIMEOUT_S)
    assert state == "playing"
    assert browser.execute_script("return document.querySelector('#gen-results video').loop") is True
    assert by_id(browser, "gen-progress").text.startswith("succeeded: 100 %")
    montage = "const m = document.querySelector('#gen-results .montage img'); return m && m.complete && m.naturalWidth > 0"
    assert wait(browser, montage)

    body = json.loads(by_id(browser, "gen-json").get_attribute("textContent"))
    assert body | {"frames": 16, "count": 1, "seed": 7, "model": MODEL} == body
    cli = by_id(browser, "gen-cli").get_attribute("textContent")
    assert cli.startswith(f"savgan generate --model '{MODEL}' --seed 7 --frames 16 --count 1")
    assert "--format ome-tiff,mp4" in cli

    links = browser.find_elements("css selector", "#gen-results a[download]")
    assert {link.get_attribute("download").rsplit(".", 1)[-1] for link in links} == {"tif", "mp4", "png"}
    ome = next(link.get_attribute("href") for link in links if link.get_attribute("download").endswith(".ome.tif"))
    download = httpx.get(ome, timeout=30)
    assert download.status_code == 200
    with tifffile.TiffFile(io.BytesIO(download.content)) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (16, 32, 32)
    assert outside_world.take() == []
    assert script_errors(browser) == []
    if os.environ.get("SAVGAN_UPDATE_SCREENSHOT") == "1":
        browser.execute_script("window.scrollTo(0, 0)")
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))


def test_zero_frames_shows_the_api_message(browser, server_keys_off: EmbeddedServer):
    open_page(browser, server_keys_off)
    choose(browser, "gen-model", MODEL)
    fill(browser, "gen-frames", 0)
    set_formats(browser, {"ome-tiff"})
    by_id(browser, "gen-submit").click()
    shown = wait(browser, "return document.getElementById('gen-error').textContent")
    expected = server_keys_off.client.post(
        "/generate", json={"model": MODEL, "formats": ["ome-tiff"], "seed": 0, "frames": 0, "count": 1}
    )
    assert expected.status_code == 422
    assert shown == expected.json()["detail"]
    assert "frames" in shown
    assert script_errors(browser) == []


def test_a_training_from_the_page_adds_a_version_to_the_model_list(browser, server_keys_off: EmbeddedServer, tmp_path: Path):
    open_page(browser, server_keys_off)
    fill_training(browser, recording_tiff(tmp_path / "cells.tif"), "cells", steps=2)
    assert "cells.tif" in by_id(browser, "train-file-list").text
    browser.execute_script("""
        window.estimates = [];
        const shown = document.getElementById('train-estimates');
        new MutationObserver(() => window.estimates.push(shown.textContent)).observe(shown, {childList: true});
    """)
    by_id(browser, "train-submit").click()
    outcome = wait(browser, "return document.getElementById('train-outcome').textContent"
                            " || document.getElementById('train-error').textContent", JOB_TIMEOUT_S)
    assert outcome == "Trained: the new version cells:1 is in the model list."
    assert any(text.startswith("W video ") for text in browser.execute_script("return window.estimates"))
    assert wait(browser, "const m = document.querySelector('#train-results img');"
                         " return m && m.complete && m.naturalWidth > 0")
    options = browser.execute_script("return [...document.querySelectorAll('#gen-model option')].map(o => o.value)")
    assert "cells:1" in options
    assert by_id(browser, "gen-model").get_attribute("value") == "cells:1"

    listed = [job["id"] for job in server_keys_off.client.get("/jobs").json()["jobs"]]
    rows = wait(browser, "const rows = [...document.querySelectorAll('#jobs-table tbody tr')];"
                         " return rows.length && rows[0].cells[2].textContent === 'succeeded' && rows.map(r => r.dataset.job)")
    assert rows == listed
    assert browser.find_element("css selector", "#jobs-table tbody tr td:nth-child(2)").text == "train"
    assert script_errors(browser) == []


def test_a_running_training_shows_its_latest_samples_and_stops_when_cancelled(
    browser, server_keys_off: EmbeddedServer, tmp_path: Path
):
    open_page(browser, server_keys_off)
    fill_training(browser, recording_tiff(tmp_path / "long.tif"), "long", steps=1000)
    by_id(browser, "train-submit").click()
    assert wait(browser, "const f = document.getElementById('train-montage'), i = f.querySelector('img');"
                         " return !f.hidden && i.complete && i.naturalWidth > 0", JOB_TIMEOUT_S)
    assert by_id(browser, "train-montage").text.startswith("Latest samples (step ")
    by_id(browser, "train-cancel").click()
    outcome = wait(browser, "const t = document.getElementById('train-outcome').textContent;"
                            " return t.startsWith('Stopped early') && t", JOB_TIMEOUT_S)
    job = server_keys_off.client.get("/jobs").json()["jobs"][0]
    assert job["state"] == "cancelled" and job["params"]["name"] == "long"
    assert outcome == f"Stopped early: the new version {job['model']} is in the model list."


def test_a_queued_job_is_cancelled_from_the_jobs_list(browser, server_keys_off: EmbeddedServer, tmp_path: Path):
    client = server_keys_off.client
    training = client.post(
        "/train", files=[("files", ("busy.tif", recording_tiff(tmp_path / "busy.tif").read_bytes(), "image/tiff"))],
        data={"params": json.dumps({"name": "busy", "base_model": MODEL, "steps": 1000, "batch_size": 2, "n_critic": 1,
                                    "patch_method": "grid"})},
    ).json()
    queued = client.post("/generate", json={"model": MODEL, "frames": 16}).json()
    try:
        open_page(browser, server_keys_off)
        wait(browser, f"return document.querySelector('#jobs-table tr[data-job=\"{queued['id']}\"] button')")
        browser.find_element("css selector", f"#jobs-table tr[data-job='{queued['id']}'] button").click()
        shown = wait(browser, f"const row = document.querySelector('#jobs-table tr[data-job=\"{queued['id']}\"]');"
                              " return row && row.cells[2].textContent === 'cancelled' && !row.querySelector('button')")
        assert shown
        assert client.get(f"/jobs/{queued['id']}").json()["state"] == "cancelled"
    finally:
        client.delete(f"/jobs/{training['id']}")
    ended = wait(browser, f"return fetch('jobs/{training['id']}').then(r => r.json()).then(j => j.state === 'cancelled')",
                 JOB_TIMEOUT_S)
    assert ended


def test_a_png_upload_shows_the_api_message_next_to_the_file(browser, server_keys_off: EmbeddedServer, tmp_path: Path):
    png = tmp_path / "cells.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(png)
    open_page(browser, server_keys_off)
    by_id(browser, "train-files").send_keys(str(png))
    fill(browser, "train-name", "cells")
    by_id(browser, "train-submit").click()
    shown = wait(browser, "return document.querySelector('#train-file-list .file-error').textContent")
    expected = server_keys_off.client.post(
        "/train", files=[("files", ("cells.png", png.read_bytes(), "image/png"))],
        data={"params": json.dumps({"name": "cells", "base_model": "", "steps": 200})},
    )
    assert expected.status_code == 415
    assert shown == expected.json()["detail"]
    assert shown.startswith("cells.png: ")
    assert by_id(browser, "train-error").text == ""
    assert script_errors(browser) == []


def test_a_wrong_key_shows_the_api_message_and_the_key_stays_out_of_urls(browser, server_keys_on: EmbeddedServer):
    browser.get(server_keys_on.url + "/")
    wait(browser, "return !document.getElementById('key-form').hidden")
    fill(browser, "key-input", "not-a-key")
    by_id(browser, "key-form").submit()
    shown = wait(browser, "return document.getElementById('key-error').textContent")
    expected = server_keys_on.client.get("/models", headers={"Authorization": "Bearer not-a-key"})
    assert expected.status_code == 401
    assert shown == expected.json()["detail"]

    fill(browser, "key-input", KEY)
    by_id(browser, "key-form").submit()
    wait(browser, "return document.querySelectorAll('#gen-model option').length > 0")
    assert not by_id(browser, "key-form").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('savgan.apiKey')") == KEY

    choose(browser, "gen-model", MODEL)
    fill(browser, "gen-frames", 8)
    set_formats(browser, {"ome-tiff"})
    by_id(browser, "gen-submit").click()  # the event stream and the job list need the key too
    assert wait(browser, "return document.querySelector('#gen-results a[download$=\".ome.tif\"]')", JOB_TIMEOUT_S)
    assert wait(browser, "return document.querySelectorAll('#jobs-table tbody tr').length") == 1
    visited = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/events" in url for url in visited) and any("/models" in url for url in visited)
    assert not any(KEY in url for url in [*visited, browser.current_url])


def test_the_form_works_from_the_keyboard(browser, server_keys_off: EmbeddedServer):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, server_keys_off)
    by_id(browser, "gen-seed").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "gen-seed-random"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert by_id(browser, "gen-seed").get_attribute("value") != "0"
    fill(browser, "gen-count", 0)
    by_id(browser, "gen-count").send_keys(Keys.ENTER)  # Enter in a field submits the form
    shown = wait(browser, "return document.getElementById('gen-error').textContent")
    assert shown.startswith("count: ")
    assert script_errors(browser) == []
