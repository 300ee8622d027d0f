"""`central-receiver serve` over TLS when [serve] certfile and keyfile are set: HTTPS with the
configured certificate, the session cookie marked Secure; plain HTTP is not answered."""

from __future__ import annotations

import http.client
import json
import select
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

BIN = Path(sys.executable).parent


def test_serve_over_tls(tmp_path, tls_files):
    config = tmp_path / "central.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "c.sqlite"}"\n\n[serve]\ncertfile = "{tls_files.server_cert}"\n'
                      f'keyfile = "{tls_files.server_key}"\n')
    subprocess.run([str(BIN / "central-receiver"), "users", "add", "--config", str(config), "otto", "--role",
                    "operator", "--password-stdin"], input="operator-pass-1\n", text=True, check=True,
                   capture_output=True)
    proc = subprocess.Popen([str(BIN / "central-receiver"), "serve", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            pytest.fail(f"serve did not start: {proc.communicate(timeout=10)[1][-3000:]}")
        url = urlsplit(json.loads(line)["url"])
        assert url.scheme == "https" and url.hostname == "127.0.0.1"
        ctx = ssl.create_default_context(cafile=str(tls_files.ca))
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=30)
        conn.request("POST", "/api/login", json.dumps({"name": "otto", "password": "operator-pass-1"}),
                     {"Content-Type": "application/json"})
        res = conn.getresponse()
        assert res.status == 200, res.read()
        cookie = res.getheader("Set-Cookie")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie, cookie
        res.read()
        conn.close()
        plain = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/api/network")
            r = plain.getresponse()
            r.read()
            raise AssertionError(f"plain HTTP answered {r.status}")
    finally:
        proc.terminate()
        proc.wait(20)
