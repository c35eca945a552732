"""The routes behind the page and the offline docs, in process against real local storage: /info,
model and training montages, model cards, the shipped static files, and their place in the wheel."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from savgan.common.context import build_context
from savgan.common.jobs import ResultFile, new_job
from savgan.common.settings import Settings
from savgan.model.layout import BUNDLED_ROOT
from savgan.service.app import create_app
from savgan.service.routes.assets import STATIC_ROOT

ROOT = Path(__file__).resolve().parents[2]
ALICE = {"Authorization": "Bearer alice-key-0123456789abcdef"}
BOB = {"Authorization": "Bearer bob-key-0123456789abcdef"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(settings_local: Settings) -> Iterator[TestClient]:
    ctx = build_context(settings_local)
    with TestClient(create_app(settings_local, context=ctx)) as client:
        client.ctx = ctx
        yield client


def publish(ctx, tmp_path: Path, owner: str, name: str, samples: bytes | None) -> None:
    run = tmp_path / f"run-{owner}-{name}"
    run.mkdir()
    (run / "manifest.json").write_text('{"model_config": {"arch": "savgan", "frames": 16, "size": 32}, "step": 3}')
    if samples is not None:
        (run / "samples.png").write_bytes(samples)
    ctx.models.publish_run(owner, name, run)


def test_info_tells_whether_a_key_is_needed_without_one(client: TestClient, tmp_path: Path):
    info = client.get("/info")
    assert info.status_code == 200
    assert info.json()["keys_required"] is True and info.json()["mode"] == "embedded"
    assert info.json()["limits"]["max_frames"] == client.ctx.settings.max_frames
    keys_off = Settings(mode="embedded", storage="local", local_storage_dir=tmp_path / "off", auth_disabled=True, max_frames=64)
    with TestClient(create_app(keys_off, context=build_context(keys_off))) as other:
        assert other.get("/info").json()["keys_required"] is False
        assert other.get("/info").json()["limits"]["max_frames"] == 64


def test_a_bundled_model_serves_its_montage_and_card(client: TestClient):
    samples = client.get("/models/toc-sim/versions/bundled/samples.png", headers=ALICE)
    assert samples.status_code == 200 and samples.headers["content-type"] == "image/png"
    assert samples.content == (BUNDLED_ROOT / "toc-sim" / "samples.png").read_bytes()
    card = client.get("/models/toc-sim/versions/bundled/card", headers=ALICE)
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    assert card.text == (BUNDLED_ROOT / "toc-sim" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert client.get("/models/toc-sim/versions/bundled/samples.png").status_code == 401


def test_a_stored_version_serves_its_montage_to_its_owner_only(client: TestClient, tmp_path: Path):
    publish(client.ctx, tmp_path, "alice", "cells", PNG_MAGIC + b"cells")
    publish(client.ctx, tmp_path, "alice", "bare", None)
    samples = client.get("/models/cells/versions/1/samples.png", headers=ALICE)
    assert samples.status_code == 200 and samples.content == PNG_MAGIC + b"cells"
    assert client.get("/models/cells/versions/1/samples.png", headers=BOB).json()["detail"].startswith("no model named 'cells'")
    assert client.get("/models/bare/versions/1/samples.png", headers=ALICE).json() == {"detail": "model bare:1 has no sample montage"}
    card = client.get("/models/cells/versions/1/card", headers=ALICE)
    assert card.status_code == 404 and "GET /models/cells" in card.json()["detail"]
    missing = client.get("/models/cells/versions/7/samples.png", headers=ALICE)
    assert missing.status_code == 404 and missing.json()["detail"] == "model 'cells' has no version '7'; versions: 1"


def test_a_training_serves_its_latest_montage_then_its_result(client: TestClient):
    ctx = client.ctx
    record = new_job("alice", "train", {"name": "cells", "checkpoint_every": 5})
    ctx.jobs.create(record)
    path = f"/jobs/{record.id}/samples.png"
    before = client.get(path, headers=ALICE)
    assert before.status_code == 404 and before.json()["detail"] == "no sample montage yet: this training writes one every 5 steps"
    ctx.storage.put_bytes(f"runs/{record.id}/samples.png", PNG_MAGIC + b"step 5", "image/png")
    assert client.get(path, headers=ALICE).content == PNG_MAGIC + b"step 5"
    assert client.get(path, headers=BOB).status_code == 404
    ctx.storage.delete_prefix(f"runs/{record.id}/")
    ctx.storage.put_bytes(f"results/{record.id}/samples.png", PNG_MAGIC + b"final", "image/png")
    record.state, record.results = "succeeded", [
        ResultFile(key=f"results/{record.id}/samples.png", filename="samples.png", role="montage", format="png", bytes=13, sha256="0" * 64)
    ]
    ctx.jobs.save(record)
    assert client.get(path, headers=ALICE).content == PNG_MAGIC + b"final"
    generation = new_job("alice", "generate", {"model": "mmnist"})
    ctx.jobs.create(generation)
    assert "is a generation" in client.get(f"/jobs/{generation.id}/samples.png", headers=ALICE).json()["detail"]


@pytest.mark.parametrize("path", ["/static/ui/../../app.py", "/static/%2e%2e/routes/ui.py", "/static/ui/", "/static/vendor/README.md"])
def test_only_shipped_browser_files_are_served(client: TestClient, path: str):
    assert client.get(path).status_code == 404


def test_the_page_loads_only_this_servers_files(client: TestClient):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert references and all(not re.match(r"^[a-z]+:", ref) for ref in references), references
    for ref in references:
        if ref.startswith("static/"):
            asset = client.get("/" + ref)
            assert asset.status_code == 200, ref
    modules = client.get("/static/ui/main.js")
    assert modules.headers["cache-control"] == "no-cache"
    assert "max-age" in client.get("/static/vendor/redoc/redoc.standalone.js").headers["cache-control"]


def test_every_imported_page_module_ships(client: TestClient):
    """An import of a file that is not shipped would leave the page blank: the JS modules' imports resolve."""
    for module in (STATIC_ROOT / "ui").glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert (STATIC_ROOT / "ui" / imported).is_file(), f"{module.name} imports {imported}"


def test_the_wheel_carries_the_page_and_the_docs_assets(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("savgan-*.whl")
    shipped = {f"savgan/service/static/{p.relative_to(STATIC_ROOT).as_posix()}" for p in STATIC_ROOT.rglob("*") if p.is_file()}
    assert shipped - set(zipfile.ZipFile(wheel).namelist()) == set()


def test_every_field_of_the_page_has_a_label():
    """Keyboard and screen-reader use: each input and select is named by a <label for>, or sits inside one."""
    from html.parser import HTMLParser

    class Fields(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.fields: list[tuple[str, bool]] = []
            self.labelled: set[str] = set()
            self.open_labels = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            attributes = dict(attrs)
            if tag == "label":
                self.open_labels += 1
                self.labelled.add(attributes.get("for") or "")
            elif tag in ("input", "select"):
                self.fields.append((attributes.get("id") or "", self.open_labels > 0))

        def handle_endtag(self, tag: str) -> None:
            if tag == "label":
                self.open_labels -= 1

    parser = Fields()
    parser.feed((STATIC_ROOT / "ui" / "index.html").read_text())
    assert len(parser.fields) > 20
    unlabelled = [field for field, inside in parser.fields if not inside and field not in parser.labelled]
    assert unlabelled == []
