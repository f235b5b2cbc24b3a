"""Headless Chromium (Debian's chromium and chromium-driver, driven by selenium) as a participant's
browser: it trusts the box's own certificate by its key alone, and counts what crossed the network.
Used by the benchmark's browser part and by tests/e2e/test_browser.py."""

import base64
import hashlib
import json
import shutil
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver


def spki_pin(cafile):
    """The box certificate's key as Chromium pins it: base64 of SHA-256 of its SubjectPublicKeyInfo.
    The browser then trusts this one key, and still refuses any other certificate."""
    with open(cafile, "rb") as handle:
        certificate = x509.load_pem_x509_certificate(handle.read())
    key = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(key).digest()).decode()


def start(cafile, profile_dir, downloads=None):
    """A new headless Chromium with an empty profile in `profile_dir`, logging its network events."""
    options = webdriver.ChromeOptions()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--window-size=1400,900",
        f"--user-data-dir={profile_dir}",
        f"--ignore-certificate-errors-spki-list={spki_pin(cafile)}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # Debian's browser and driver, named, so that selenium does not look for others on the internet.
    options.binary_location = shutil.which("chromium") or ""
    if downloads:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    if downloads:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


def received(driver):
    """Every response received over the network since the last call, as (url, bytes): the pages,
    the redirects, the API answers and the static files, as Chromium counts them (compressed,
    headers included; nothing for what came from its cache)."""
    urls, sizes = {}, []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message["params"]
        if message["method"] == "Network.responseReceived":
            urls[params["requestId"]] = params["response"]["url"]
        elif message["method"] == "Network.requestWillBeSent" and "redirectResponse" in params:
            redirect = params["redirectResponse"]  # a redirect's own answer, under the same request id
            sizes.append((None, redirect["url"], redirect.get("encodedDataLength", 0)))
        elif message["method"] == "Network.loadingFinished":
            sizes.append((params["requestId"], None, params["encodedDataLength"]))
    return [(url or urls.get(request, ""), size) for request, url, size in sizes]


def kind(url):
    """What a participant's browser fetched, by the part of the box that served it."""
    path = urlsplit(url).path
    if "/api/oauth2/" in path or path.endswith("/oauth_callback"):
        return "login round trip (OAuth)"
    if path.startswith("/hub/static/") or "/static/" in path or "/lab/extensions/" in path:
        return "static files"
    if path.startswith("/hub/"):
        return "hub pages and API"
    if "/api/" in path or path.endswith("/lsp/status"):
        return "server API (settings, kernels, contents)"
    return "server pages"
