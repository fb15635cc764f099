#!/usr/bin/python
"""Ansible module: bootstrap Consul's ACL system once and make its policies and tokens match.

Runs on a Consul server. Idempotent: reports changed only when it bootstrapped, or created or
updated a policy or token. Returns the tokens' secrets (callers use no_log).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: consul_acl_sync
short_description: Bootstrap Consul ACLs once; converge policies and tokens
options:
  url: {description: Base URL of the local agent's HTTPS API., type: str, required: true}
  ca_file: {description: CA that signed the agent's certificate., type: path, required: true}
  management_token_file: {description: Where the bootstrap token is kept (root 0600)., type: path, required: true}
  policies: {description: Policy name to rules (HCL)., type: dict, required: true}
  tokens: {description: Token description to a list of policy names., type: dict, required: true}
"""


class Consul:
    def __init__(self, url: str, ca_file: str, token: str | None = None):
        self.url = url.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca_file)
        self.token = token

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            self.url + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"X-Consul-Token": self.token} if self.token else {})
        with urllib.request.urlopen(request, context=self.context, timeout=10) as response:
            return json.loads(response.read() or b"null")


def management_token(consul: Consul, path: str) -> tuple[str, bool]:
    """The management token: read from its file, or made by the one-time bootstrap."""
    if os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip(), False
    secret = consul.call("PUT", "/v1/acl/bootstrap")["SecretID"]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret + "\n")
    return secret, True


def sync_policies(consul: Consul, wanted: dict[str, str]) -> bool:
    changed = False
    existing = {p["Name"]: p["ID"] for p in consul.call("GET", "/v1/acl/policies")}
    for name, rules in wanted.items():
        if name not in existing:
            consul.call("PUT", "/v1/acl/policy", {"Name": name, "Rules": rules})
            changed = True
        elif consul.call("GET", f"/v1/acl/policy/{existing[name]}")["Rules"] != rules:
            consul.call("PUT", f"/v1/acl/policy/{existing[name]}",
                        {"ID": existing[name], "Name": name, "Rules": rules})
            changed = True
    return changed


def sync_tokens(consul: Consul, wanted: dict[str, list[str]]) -> tuple[dict[str, str], bool]:
    changed = False
    secrets = {}
    existing = {t["Description"]: t for t in consul.call("GET", "/v1/acl/tokens")}
    for description, policies in wanted.items():
        links = [{"Name": name} for name in sorted(policies)]
        token = existing.get(description)
        if token is None:
            token = consul.call("PUT", "/v1/acl/token", {"Description": description, "Policies": links})
            changed = True
        elif sorted(p["Name"] for p in token.get("Policies") or []) != sorted(policies):
            token = consul.call("PUT", f"/v1/acl/token/{token['AccessorID']}",
                                {"Description": description, "Policies": links})
            changed = True
        else:
            token = consul.call("GET", f"/v1/acl/token/{token['AccessorID']}")
        secrets[description] = token["SecretID"]
    return secrets, changed


def main() -> None:
    module = AnsibleModule(argument_spec={
        "url": {"type": "str", "required": True},
        "ca_file": {"type": "path", "required": True},
        "management_token_file": {"type": "path", "required": True, "no_log": False},
        "policies": {"type": "dict", "required": True},
        "tokens": {"type": "dict", "required": True, "no_log": False},
    })
    params = module.params
    consul = Consul(params["url"], params["ca_file"])
    try:
        consul.token, bootstrapped = management_token(consul, params["management_token_file"])
        policies_changed = sync_policies(consul, params["policies"])
        secrets, tokens_changed = sync_tokens(consul, params["tokens"])
    except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
        detail = error.read().decode(errors="replace") if isinstance(error, urllib.error.HTTPError) else ""
        module.fail_json(msg=f"Consul ACL sync failed: {error} {detail}".strip())
    module.exit_json(changed=bootstrapped or policies_changed or tokens_changed, tokens=secrets)


if __name__ == "__main__":
    main()
