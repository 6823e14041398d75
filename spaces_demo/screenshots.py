"""Open the demo in headless Chromium, use each tab as a visitor would, and save screenshots.

    apt-get install chromium chromium-driver && pip install selenium
    python spaces_demo/screenshots.py --out screenshots/            # tiny random models
    python spaces_demo/screenshots.py --chat-model runs/instructions --spam-model runs/spam --out screenshots/

Sends a chat message and waits for the streamed answer (chat.png), classifies a spam example (spam.png), opens
"Inside the model" and waits for the token table, the attention heatmap and the next-token chart, then presses Step
(inside.png, the whole tab). tests/test_browser.py runs the same ``visit``. Chromium is started with the
background-networking features off, so it talks only to the local server.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ROOT)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run",
                  "--disable-sync", "--disable-quic", "--window-size=1280,900"]
CHAT_MESSAGE = "Rewrite the sentence using a simile: The car is very fast."
SPAM_MESSAGE = "WINNER!! You have been selected to receive a £900 prize. Call now to claim!"


def find_chromium(chromium: str | None = None, chromedriver: str | None = None) -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` paths, or the reason they cannot be used (a string)."""
    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("chrome")
    chromedriver = chromedriver or shutil.which("chromedriver")
    if not chromium or not chromedriver:
        return ("Chromium and its driver are not installed (Debian: apt-get install chromium chromium-driver; "
                ".ci/run does it where apt works)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium, in the dev extra)"
    return chromium, chromedriver


def start_chromium(chromium: str, chromedriver: str):
    """A headless Chromium under selenium, with a throw-away profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='hfgpt-chromium-')}")
    return webdriver.Chrome(service=Service(chromedriver), options=options)


def visit(driver, url: str, out: str, timeout: float = 30) -> dict[str, str]:
    """Use the three tabs of the demo at ``url``; fails (selenium's TimeoutException) where a tab does not answer.
    Returns what the page showed: the chat answer, the spam label, the inspector's first token ids, and the
    screenshots' paths."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.1)
    seen = {}
    os.makedirs(out, exist_ok=True)

    def shot(name: str) -> None:
        """The whole page from its top (the window is stretched to the page's height, then restored)."""
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(900, height + 160), 3200))  # + the window's own frame
        time.sleep(0.3)
        seen[name] = os.path.join(out, f"{name}.png")
        driver.save_screenshot(seen[name])
        driver.set_window_size(1280, 900)

    def settled(read, marker: str, quiet: float = 0.5) -> str:
        """``read()`` once it shows ``marker`` and has not changed for ``quiet`` seconds (the page renders in steps)."""
        last, since, start = None, time.monotonic(), time.monotonic()
        while time.monotonic() - start < timeout:
            text = read()
            if text != last:
                last, since = text, time.monotonic()
            elif marker in text and time.monotonic() - since >= quiet:
                return text
            time.sleep(0.1)
        raise TimeoutError(f"the page never settled on text with {marker!r}; last seen: {last!r}")

    def open_tab(label: str) -> None:
        next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role='tab']") if label in b.text).click()

    driver.get(url)
    # Chat: the answer streams into a second message; it is done when its text stops changing
    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "textarea")))
    box.send_keys(CHAT_MESSAGE)
    box.send_keys(Keys.ENTER)
    bot = (By.CSS_SELECTOR, ".message-row.bot-row, [data-testid='bot']")
    wait.until(lambda d: any(m.text.strip() for m in d.find_elements(*bot)))
    answer = settled(lambda: driver.find_elements(*bot)[-1].text.strip(), "", quiet=1.5)
    seen["chat_answer"] = answer
    shot("chat")

    # Spam classifier: the label appears under "ham / spam"
    open_tab("Spam")
    sms = wait.until(lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, "textarea")
                                     if t.is_displayed() and "SMS" in (t.get_attribute("placeholder") or "")), None))
    sms.send_keys(SPAM_MESSAGE)
    next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Classify").click()
    label = wait.until(lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, "[data-testid='label-output-value']")
                                       if e.is_displayed() and e.text.strip()), None))
    seen["spam_label"] = label.text.strip()
    shot("spam")

    # Inside the model: tokens with ids, the attention heatmap, the next-token chart; Step appends a token
    open_tab("Inside the model")

    def drawn(elem_id: str):
        """The matplotlib image of a gr.Plot, once the browser has decoded it."""
        return lambda d: next((i for i in d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img")
                               if i.is_displayed() and d.execute_script("return arguments[0].naturalWidth", i) > 100),
                              None)

    seen["token_table"] = settled(lambda: driver.find_element(By.ID, "inside-token-table").text, "GPT-2 id\n0")
    seen["tokens"] = settled(lambda: driver.find_element(By.ID, "inside-tokens").text, "\n")
    wait.until(drawn("inside-attention"))
    wait.until(drawn("inside-next-token"))
    text_box = driver.find_element(By.CSS_SELECTOR, "#inside-text textarea")
    before = text_box.get_attribute("value")
    driver.find_element(By.ID, "inside-step").click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#inside-text textarea").get_attribute("value") != before)
    seen["after_step"] = driver.find_element(By.CSS_SELECTOR, "#inside-text textarea").get_attribute("value")
    wait.until(drawn("inside-next-token"))
    time.sleep(0.3)  # the redrawn plots settle
    shot("inside")
    return seen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chat-model")
    parser.add_argument("--spam-model")
    parser.add_argument("--inspect-model", help="the inspector's model (default: the chat model)")
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("--chromium")
    parser.add_argument("--chromedriver")
    args = parser.parse_args(argv)

    found = find_chromium(args.chromium, args.chromedriver)
    if isinstance(found, str):
        sys.exit(found)
    from tiny_models import launch_local

    demo, url = launch_local(args.chat_model, args.spam_model, inspect_model=args.inspect_model)
    driver = start_chromium(*found)
    try:
        seen = visit(driver, url, args.out, timeout=120)
    finally:
        driver.quit()
        demo.close()
    print("saved", *(seen[name] for name in ("chat", "spam", "inside")))


if __name__ == "__main__":
    main()
