"""Takes the README's picture of `dmfn app` (docs/app.png): the spoon painted out of scikit-image's `coffee`.

Starts the app in this process, drives it in headless Chromium (Debian's `chromium` and
`chromium-driver`, the `selenium` package) like a user: upload, paint, inpaint; then saves a
screenshot of the page.

Usage:

    python scripts/app_screenshot.py --model runs/demo --out docs/app.png   # the model's own trained size
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import threading

# The spoon of `coffee` (600 x 400), as strokes of (x, y) photo pixels: handle, then bowl.
STROKES = [[(412, 70), (402, 130), (392, 190), (380, 240)], [(345, 255), (385, 250), (390, 290), (350, 310), (335, 280), (365, 275)]]
BRUSH = 34


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--trained-size", type=int, help="override of the size the model records")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--out", default="docs/app.png")
    args = parser.parse_args(argv)

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait
    from skimage import data

    from dmfn_tf.app.server import AppState, make_server
    from dmfn_tf.inpaint.strategies import DEFAULT_TRAINED_SIZE, HDOptions
    from dmfn_tf.model_io import trained_size

    size = args.trained_size or trained_size(args.model) or DEFAULT_TRAINED_SIZE
    server = make_server(AppState(model=args.model, hd=HDOptions(strategy=args.strategy, trained_size=size)), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        with tempfile.TemporaryDirectory() as directory:
            photo = os.path.join(directory, "coffee.png")
            Image.fromarray(data.coffee()).save(photo)
            browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
            WebDriverWait(browser, 30).until(lambda b: b.find_element("id", "model").get_attribute("value"))
            browser.find_element("id", "photo").send_keys(photo)
            WebDriverWait(browser, 30).until(lambda b: "600x400" in b.find_element("id", "info").text)
        browser.execute_script("const b = arguments[0]; b.value = arguments[1]; b.dispatchEvent(new Event('input'))",
                               browser.find_element("id", "brush"), BRUSH)
        canvas = browser.find_element("id", "mask-canvas")
        scale = canvas.size["width"] / 600
        centre_x, centre_y = canvas.size["width"] // 2, canvas.size["height"] // 2
        for stroke in STROKES:
            points = [(round(x * scale), round(y * scale)) for x, y in stroke]
            actions = ActionChains(browser).move_to_element_with_offset(canvas, points[0][0] - centre_x, points[0][1] - centre_y)
            actions.click_and_hold()
            for (x0, y0), (x1, y1) in zip(points, points[1:]):
                actions.move_by_offset(x1 - x0, y1 - y0)
            actions.release().perform()
        browser.find_element("id", "run").click()
        WebDriverWait(browser, 300).until(lambda b: "strategy" in b.find_element("id", "info").text
                                          or b.find_element("id", "message").text)
        message = browser.find_element("id", "message").text
        if message:
            raise SystemExit(f"the page says: {message}")
        screenshot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
        # 256 colours: a third of the file size, for the repository's sake.
        screenshot.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(args.out, optimize=True)
        print(f"wrote {args.out}")
    finally:
        browser.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
