"""End to end: the page in headless Chromium (Selenium + Debian's chromium and chromium-driver) against the
server on a free localhost port: upload -> stylize -> download, bad uploads, adapting to a painting."""

import io
import shutil
import threading
import time

import jax
import numpy as np
import pytest
from PIL import Image

from metastyle_jax import checkpoints, data, images, serve, stylize, transformer

from test_serve import photo_bytes, tiny_adaptation

LIMIT = 200_000
MAX_SIDE = 64
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
CHROMEDRIVER = shutil.which("chromedriver")

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("headless Chromium needs the chromium and chromium-driver packages "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random-init network saved as an 'adapted' checkpoint: (path, params)."""
    path = tmp_path_factory.mktemp("browser") / "noise"
    params = transformer.init_params(jax.random.key(11), 16)
    checkpoints.save_model(path, params, checkpoints.model_meta("adapted", style="noise.png", steps=3))
    return path, params


@pytest.fixture(scope="module")
def server(model, random_vgg):
    """The page served on a free 127.0.0.1 port from a thread: (base URL, studio)."""
    studio = serve.Studio(serve.find_models([model[0]]), serve.Limits(LIMIT, MAX_SIDE), tiny_adaptation(random_vgg),
                          log=lambda line: None)
    httpd = serve.make_server(serve.create_app(studio), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.port}/", studio
    httpd.shutdown()
    httpd.server_close()
    studio.close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1200,1000"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def open_page(browser, url):
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#style option[value='m0']"))


def message(browser, element_id, timeout=60):
    """The text of an error message once the page shows one."""
    WebDriverWait(browser, timeout).until(
        lambda d: "error" in d.find_element(By.ID, element_id).get_attribute("class").split())
    return browser.find_element(By.ID, element_id).text


def test_upload_stylize_download(browser, server, model, downloads, tmp_path):
    url, _ = server
    photo = tmp_path / "astronaut.png"
    images.save_image(photo, images.resize(images.as_float_rgb(data.skimage_image("astronaut")), (72, 96)))
    open_page(browser, url)
    browser.find_element(By.ID, "photo").send_keys(str(photo))
    browser.find_element(By.ID, "stylize").click()
    WebDriverWait(browser, 120).until(lambda d: d.execute_script(
        "const i = document.getElementById('result-img'); return !document.getElementById('result-figure').hidden"
        " && i.complete && i.naturalWidth > 0"))
    assert browser.execute_script("return document.getElementById('result-img').naturalWidth") == 64
    assert "stylized in" in browser.find_element(By.ID, "message").text
    browser.find_element(By.ID, "download").click()
    target = downloads / "astronaut_noise.png"
    deadline = time.monotonic() + 30
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert target.exists(), f"no download in {sorted(p.name for p in downloads.iterdir())}"
    got = np.asarray(Image.open(target))
    assert got.shape == (48, 64, 3)
    expected = stylize.stylize(model[1], [images.load_image(photo, max_side=MAX_SIDE)])[0]
    np.testing.assert_array_equal(got, np.round(expected * 255).astype(np.uint8))


@pytest.mark.parametrize("name,content,expected", [
    ("notes.txt", b"not a picture\n" * 20, "notes.txt is not an image file"),
    ("tiny.png", photo_bytes((8, 8)), "tiny.png: 8x8 is too small"),
    ("huge.png", photo_bytes() + b"\0" * LIMIT, f"huge.png is {(len(photo_bytes()) + LIMIT) / 1e6:.3g} MB, over the limit of 0.2 MB"),
])
def test_bad_upload_shows_the_message(browser, server, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    open_page(browser, server[0])
    browser.find_element(By.ID, "photo").send_keys(str(path))
    browser.find_element(By.ID, "stylize").click()
    assert expected in message(browser, "message")
    assert browser.execute_script("return document.getElementById('result-figure').hidden")


def test_adapt_to_a_painting_in_the_browser(browser, server, tmp_path):
    path = tmp_path / "stripes.png"
    path.write_bytes(photo_bytes((80, 80), seed=3))
    open_page(browser, server[0])
    assert "Johnson et al." in browser.find_element(By.ID, "johnson-warning").text
    browser.find_element(By.ID, "painting").send_keys(str(path))
    browser.find_element(By.ID, "adapt").click()
    WebDriverWait(browser, 600).until(lambda d: "adapted to stripes.png" in d.find_element(By.ID, "adapt-message").text)
    selected = browser.find_element(By.ID, "style")
    assert selected.get_attribute("value").startswith("a")
    assert "stripes.png (Johnson et al., 2 steps)" in browser.execute_script(
        "const s = document.getElementById('style'); return s.options[s.selectedIndex].text")
    assert browser.execute_script("return document.getElementById('adapt-progress').value") == 2
    assert browser.find_element(By.ID, "adapt-status").text.startswith("done: 2 steps, loss ")


def test_bad_painting_shows_the_message(browser, server, tmp_path):
    path = tmp_path / "gray.png"
    gray = io.BytesIO()
    Image.new("L", (80, 80), 100).save(gray, format="PNG")
    path.write_bytes(gray.getvalue())
    open_page(browser, server[0])
    browser.find_element(By.ID, "painting").send_keys(str(path))
    browser.find_element(By.ID, "adapt").click()
    assert "gray.png is grayscale" in message(browser, "adapt-message")
