"""The organizer's own certificate (nginx_tls_mode: provided), served by nginx and verified against the
organizer's CA, with HSTS; the box goes back to its self-signed certificate afterwards."""

import subprocess
from pathlib import Path

import pytest
import requests
from conftest import PORT, converge


def make_ca_and_certificate(directory):
    """An organizer's CA and a certificate for localhost that it signed, made with openssl."""

    def openssl(*argv):
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True)

    # The extensions a strict RFC 5280 validator (as sslyze uses) asks of a CA and a server certificate.
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pophub test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "hub.key", "-out", "hub.csr")
    (directory / "san.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl("x509", "-req", "-in", "hub.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "hub.crt")  # fmt: skip
    (directory / "fullchain.pem").write_text((directory / "hub.crt").read_text() + (directory / "ca.crt").read_text())
    return directory / "ca.crt", directory / "fullchain.pem", directory / "hub.key"


@pytest.fixture(scope="module")
def provided(tmp_path_factory):
    ca, chain, key = make_ca_and_certificate(tmp_path_factory.mktemp("tls"))
    converge(tmp_path_factory, tags="nginx", nginx_tls_mode="provided", nginx_tls_certificate=str(chain),
             nginx_tls_private_key=str(key))  # fmt: skip
    yield ca
    converge(tmp_path_factory, tags="nginx", nginx_tls_mode="selfsigned")


def test_the_provided_certificate_is_served_with_hsts(provided, hub_url):
    response = requests.get(f"{hub_url}/hub/login", verify=str(provided), timeout=30)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000"


def test_the_tls_settings_meet_mozillas_intermediate_profile(provided):
    """sslyze scans the server and checks the result against Mozilla's "intermediate" profile
    (protocols, ciphers, curves, certificate), trusting the organizer's CA for the path check."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommandsExtraArguments,
        Scanner,
        ServerNetworkLocation,
        ServerScanRequest,
    )
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    request = ServerScanRequest(
        server_location=ServerNetworkLocation("localhost", PORT),
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(provided))
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = scanner.get_results()
    profile = MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
    try:
        check_server_against_tls_configuration(result, profile)
    except ServerNotCompliantWithTlsConfiguration as not_compliant:
        pytest.fail(f"not Mozilla intermediate: {not_compliant.issues}")
