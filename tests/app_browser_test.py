"""`dmfn app` driven in headless Chromium: upload, paint, undo, inpaint, download, error messages.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package (`.ci/run` installs
them). Where they are missing the test skips, except under CI (`CI=true`), where `.ci/run` must
have installed them; there it skips only when `.ci/run` could not install the browser and says
why in `DMFN_BROWSER_UNAVAILABLE`. The screenshot of the page with its result is saved in the
test's tmp folder and, when `DMFN_TEST_ARTIFACTS` names a folder, copied there.
"""

import os
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image

from dmfn_tf.app.server import AppState, make_server
from dmfn_tf.inpaint.strategies import HDOptions

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WAIT_S = 30
BRUSH = 12  # CSS pixels


def _browser_or_skip():
    reason = os.environ.get("DMFN_BROWSER_UNAVAILABLE")
    if reason:
        pytest.skip(f"no browser: {reason}")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"headless Chromium test needs {', '.join(missing)} (apt-get install chromium chromium-driver; pip install selenium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run should have installed them")
        pytest.skip(message)


@pytest.fixture
def driver(tmp_path):
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1300"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path / "downloads")})
    yield browser
    browser.quit()


@pytest.fixture
def app_url(tiny_generator_file):
    # crop windows of at most 64 x 64; the 160 x 120 photo as a whole (original) is over the budget.
    state = AppState(model=tiny_generator_file, hd=HDOptions(strategy="crop", trained_size=64), max_pixels=10_000)
    server = make_server(state, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _photo(path):
    from skimage import data

    photo = np.asarray(Image.fromarray(data.chelsea()).resize((160, 120), Image.BICUBIC))
    Image.fromarray(photo).save(path)
    return photo


def _wait_for_text(browser, element_id, text):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT_S).until(lambda b: text in b.find_element("id", element_id).text)
    return browser.find_element("id", element_id).text


def _stroke(browser, points, scale):
    """Drags the mouse over `points` (photo pixels from the top left) on the mask canvas shown `scale` times larger."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = browser.find_element("id", "mask-canvas")
    css = [(round(x * scale), round(y * scale)) for x, y in points]
    # Selenium offsets are from the element's centre.
    centre_x, centre_y = canvas.size["width"] // 2, canvas.size["height"] // 2
    actions = ActionChains(browser).move_to_element_with_offset(canvas, css[0][0] - centre_x, css[0][1] - centre_y)
    actions.click_and_hold()
    for (x0, y0), (x1, y1) in zip(css, css[1:]):
        actions.move_by_offset(x1 - x0, y1 - y0)
    actions.release().perform()


def _near(shape, points, radius):
    """Pixels within `radius` of the polyline through `points` (x, y)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    near = np.zeros(shape, bool)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        length = max(np.hypot(x1 - x0, y1 - y0), 1e-9)
        t = np.clip(((cols - x0) * (x1 - x0) + (rows - y0) * (y1 - y0)) / length**2, 0, 1)
        near |= np.hypot(cols - (x0 + t * (x1 - x0)), rows - (y0 + t * (y1 - y0))) <= radius
    return near


def test_paint_inpaint_and_download_in_chromium(driver, app_url, tmp_path):
    photo = _photo(tmp_path / "cat.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    driver.get(app_url)
    _wait_for_text(driver, "strategy", "crop")
    # The model is chosen by name among the server's models; no path reaches the page.
    assert driver.find_element("id", "model").get_attribute("value") == "generator.keras"
    assert "/" not in driver.find_element("id", "model").text

    # A file that is not an image: a message on the page, no editor.
    driver.find_element("id", "photo").send_keys(str(tmp_path / "notes.txt"))
    assert "notes.txt: not a readable image file" in _wait_for_text(driver, "message", "notes.txt")
    assert not driver.find_element("id", "editor").is_displayed()

    # Over the budget as a whole: the message names the budget.
    driver.find_element("css selector", "#strategy option[value='original']").click()
    driver.find_element("id", "photo").send_keys(str(tmp_path / "cat.png"))
    assert "cat.png: 160x120 = 19,200 pixels exceeds the budget of 10,000 pixels" in _wait_for_text(driver, "message", "budget")

    driver.find_element("css selector", "#strategy option[value='crop']").click()
    driver.execute_script("arguments[0].value = ''", driver.find_element("id", "photo"))
    driver.find_element("id", "photo").send_keys(str(tmp_path / "cat.png"))
    _wait_for_text(driver, "info", "160x120")
    assert driver.find_element("id", "message").text == ""

    # Inpainting with nothing painted says so.
    driver.find_element("id", "run").click()
    assert "the mask is empty" in _wait_for_text(driver, "message", "empty")

    driver.execute_script("const b = arguments[0]; b.value = arguments[1]; b.dispatchEvent(new Event('input'))",
                          driver.find_element("id", "brush"), BRUSH)
    scale = driver.find_element("id", "mask-canvas").size["width"] / photo.shape[1]  # shown larger than 160 wide
    assert scale > 2
    radius = BRUSH / scale / 2  # in photo pixels
    kept = [(40, 40), (80, 50), (110, 45)]
    undone = [(30, 100), (130, 100)]
    _stroke(driver, kept, scale)
    _stroke(driver, undone, scale)
    driver.find_element("id", "undo").click()
    driver.find_element("id", "run").click()
    info = _wait_for_text(driver, "info", "crop strategy")
    assert "the model ran on 1 input" in info

    driver.find_element("id", "download").click()
    download = tmp_path / "downloads" / "cat_inpainted.png"
    deadline = time.time() + WAIT_S
    while not download.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert download.exists(), "the download did not arrive"
    result = np.asarray(Image.open(download).convert("RGB"))
    assert result.shape == photo.shape

    changed = np.any(result != photo, axis=-1)
    # Outside the kept stroke (plus a pixel for anti-aliasing and mouse rounding) nothing may change ...
    assert not changed[~_near(changed.shape, kept, radius + 1)].any(), "a known pixel changed"
    # ... the undone stroke left no hole, and the hole along the kept stroke was filled.
    assert not changed[_near(changed.shape, undone, radius + 1)].any()
    assert changed[_near(changed.shape, kept, max(radius - 1, 0.5))].mean() > 0.9

    driver.execute_script("window.scrollTo(0, 0)")
    screenshot = tmp_path / "app_browser_test.png"
    driver.save_screenshot(str(screenshot))
    assert Image.open(screenshot).size[0] > 0
    artefacts = os.environ.get("DMFN_TEST_ARTIFACTS")
    if artefacts:
        os.makedirs(artefacts, exist_ok=True)
        shutil.copy(screenshot, artefacts)
