"""Signs in with MSAL for Python, unchanged, against a Passthru cloud.

Reads {"authority", "ca_file", "client_id", "cases": [{"username", "password"}]} as JSON on
stdin and prints, for each case, what MSAL returned: the id_token claims on success, or the
error and error codes. The Rust test that runs it checks the results.
"""
import json
import os
import sys

# requests lets these override MSAL's `verify`; the test must use the cloud's CA.
os.environ.pop("REQUESTS_CA_BUNDLE", None)
os.environ.pop("CURL_CA_BUNDLE", None)

import msal  # noqa: E402


def main():
    spec = json.load(sys.stdin)
    app = msal.PublicClientApplication(
        spec["client_id"],
        authority=spec["authority"],
        verify=spec["ca_file"],
        instance_discovery=False,
    )
    results = []
    for case in spec["cases"]:
        r = app.acquire_token_by_username_password(case["username"], case["password"], scopes=[])
        if "access_token" in r:
            results.append({
                "ok": True,
                "claims": r.get("id_token_claims", {}),
                "has_refresh_token": "refresh_token" in r,
                "access_token": r["access_token"],
                "id_token": r.get("id_token", ""),
            })
        else:
            results.append({
                "ok": False,
                "error": r.get("error"),
                "error_codes": r.get("error_codes", []),
                "error_description": r.get("error_description", ""),
            })
    print(json.dumps({"msal_version": msal.__version__, "results": results}))


if __name__ == "__main__":
    main()
