"""Open the demo in headless Chromium, send a chat message and a spam check, and save screenshots.

    apt-get install chromium chromium-driver && pip install selenium
    python spaces_demo/screenshots.py --out screenshots/            # tiny random models
    python spaces_demo/screenshots.py --chat-model runs/instructions --spam-model runs/spam --out screenshots/

Writes chat.png (the streamed answer in the Chat tab) and spam.png (the ham/spam label). Chromium is started
with the background-networking features off, so it talks only to the local server.
"""

import argparse
import os
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chat-model")
    parser.add_argument("--spam-model")
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from tiny_models import launch_local

    demo, url = launch_local(args.chat_model, args.spam_model)
    os.makedirs(args.out, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='hfgpt-chromium-')}")
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(url)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "textarea")))
        box.send_keys("Rewrite the sentence using a simile: The car is very fast.")
        box.send_keys(Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".message-row, .message")) >= 2)
        time.sleep(4)  # let the streamed answer finish
        driver.save_screenshot(os.path.join(args.out, "chat.png"))

        tab = next(b for b in driver.find_elements(By.CSS_SELECTOR, "button[role='tab']") if "Spam" in b.text)
        tab.click()
        sms = wait.until(lambda d: next((t for t in d.find_elements(By.CSS_SELECTOR, "textarea")
                                         if t.is_displayed() and "SMS" in (t.get_attribute("placeholder") or "")),
                                        None))
        sms.send_keys("WINNER!! You have been selected to receive a £900 prize. Call now to claim!")
        next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Classify").click()
        wait.until(lambda d: "spam" in d.find_element(By.TAG_NAME, "body").text.lower().split("ham / spam", 1)[-1])
        time.sleep(1.5)
        driver.save_screenshot(os.path.join(args.out, "spam.png"))
    finally:
        driver.quit()
        demo.close()
    print("saved", os.path.join(args.out, "chat.png"), os.path.join(args.out, "spam.png"))


if __name__ == "__main__":
    main()
