"""Screenshot of the web page (docs/serve.png): headless Chromium uploads an embedded photo and stylizes it.

    python docs/serve_screenshot.py --model ADAPTED_CKPT [--photo embedded:astronaut] [--out docs/serve.png]

Serves `metastyle_jax.serve` on a free localhost port from a thread, drives Debian's chromium with Selenium
through upload -> stylize, and saves the browser window. Needs `pip install selenium` and
`apt-get install chromium chromium-driver`.
"""

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

from metastyle_jax import adapt, checkpoints, checks, config, data, images, outputs, serve
from metastyle_jax.commands import cli
from metastyle_jax.errors import UserError


def browser(width, height):
    """Headless Chromium through Debian's chromedriver; a UserError if either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise UserError("selenium is not installed: pip install selenium") from None
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                    None)
    if chromium is None or shutil.which("chromedriver") is None:
        raise UserError("needs Chromium and its driver: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def main(argv=None):
    p = cli.ArgumentParser(prog="python docs/serve_screenshot.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="adapted checkpoint(s) the page offers")
    p.add_argument("--photo", default="embedded:astronaut", help="the photo to upload (default embedded:astronaut)")
    p.add_argument("--max-side", type=int, default=320, help="the page's --max-side (default 320)")
    p.add_argument("--size", default="1100x1100", help="browser window WIDTHxHEIGHT (default 1100x1100)")
    p.add_argument("--out", default="docs/serve.png", help="the screenshot (default docs/serve.png)")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    args = p.parse_args(argv)
    checks.check_image_suffix(args.out)
    outputs.check([args.out], force=args.force)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {args.size}: expected WIDTHxHEIGHT, e.g. 1100x900") from None
    photo = data.load_image_spec(args.photo)

    cfg = config.load("adapt")
    theta, _ = checkpoints.load_model(adapt.DEFAULT_THETA, kinds=("theta",))
    adaptation = serve.Adaptation(cfg, theta, adapt.DEFAULT_THETA, lambda: None)  # the adapt section; never run
    studio = serve.Studio(serve.find_models(args.model), serve.Limits(max_side=args.max_side), adaptation)
    httpd = serve.make_server(serve.create_app(studio), "127.0.0.1", 0)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    driver = browser(width, height)
    try:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        with tempfile.TemporaryDirectory() as tmp:
            name = args.photo.split(":")[-1] if args.photo.startswith(data.EMBEDDED_PREFIX) else Path(args.photo).stem
            upload = Path(tmp) / f"{name}.png"
            images.save_image(upload, photo)
            driver.get(f"http://127.0.0.1:{httpd.port}/")
            WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#style option"))
            driver.find_element(By.ID, "photo").send_keys(str(upload))
            driver.find_element(By.ID, "stylize").click()
            WebDriverWait(driver, 300).until(lambda d: d.execute_script(
                "const i = document.getElementById('result-img');"
                "return !document.getElementById('result-figure').hidden && i.complete && i.naturalWidth > 0"))
            shot = Path(tmp) / "shot.png"
            driver.save_screenshot(str(shot))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(shot, args.out + ".tmp")
            os.replace(args.out + ".tmp", args.out)
    finally:
        driver.quit()
        httpd.shutdown()
        studio.close()
    print(f"screenshot -> {args.out}")


if __name__ == "__main__":
    cli.run(main)
