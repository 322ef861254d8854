"""An access sweep over the whole platform, driven by the merged OpenAPI document.

Every operation the gateway documents (``/v1/openapi.json``, the document behind
``/docs/platform``) is called through the gateway, so a route added tomorrow is swept
without editing this file:

* with no token, a token that is not a JWT, a token signed by a stranger's key under the
  gateway's key id, and an expired token: 401 problem+json;
* with a token of the province's client that holds no scope of the route's service (the
  gateway refuses it), and with one holding every scope of the client except the route's
  own (the service refuses it): 403. The route's scope is read from the operation's security
  requirement when the document states one, else from the ``required_scopes`` of a 403
  probe with a one-scope token. Documented scopes must also be enough: a token holding only
  them is not refused for want of a scope;
* every ``GET`` with an id in its path, on real records (ids found by listing the collections
  with the province's token), with the tokens of two regency offices (Sidoarjo 35.15 and
  Bojonegoro 35.22): a record of another regency is 404 (or 403); every list route (a
  ``GET`` without path parameters answering an array or a page), and every nested list,
  holds no record of another regency, also when filtered by another regency's code. A
  record's regions are the region codes in its fields (``regency_code``,
  ``destination_code``, ``district_codes``...) and in those of the records above it in the
  path; a record with none is the province's and not judged. Each office subscribes to a
  webhook of its region for the run, so the gateway's subscription routes have records too;
* every shelter ``GET`` with a case in its path, with a caseworker not assigned to the case
  and a supervisor of another shelter: 404 (or 403); their case lists never show it.

Each check collects what it finds and fails once with the whole list.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pilar_kernel.auth import SigningKey
from platform_testkit import Platform

pytestmark = pytest.mark.stack

PROVINCE = "dinsos-jatim"
OFFICES = {"dinsos-sidoarjo": "35.15", "dinsos-bojonegoro": "35.22"}  # two regency offices
SHELTER_APP = "shelter-app"
FOREIGN_FILTER = "35.78"  # Surabaya: a regency of neither office, used as a list filter
METHODS = ("get", "post", "put", "patch", "delete")
REGION = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$")
LISTED = 100  # records listed per collection to find ids
PER_ROUTE = 3  # concrete records tried per route and per region
CONCURRENCY = 6


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict = field(compare=False, hash=False)

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def service(self) -> str:
        """The upstream that answers (``gateway`` for the gateway's own routes)."""
        parts = self.path.split("/")
        return parts[2] if len(parts) > 3 and parts[1] == "v1" and parts[2] in SERVICES else "gateway"

    @property
    def params(self) -> list[str]:
        return re.findall(r"{([^}]+)}", self.path)

    @property
    def public(self) -> bool:
        return self.spec.get("security") == []


SERVICES: set[str] = set()  # filled from the document's x-pilar-services


@dataclass(frozen=True)
class Instance:
    """A concrete URL of a route template and the region codes of the records it names."""

    url: str
    codes: frozenset[str]


def region_codes(item: Any) -> frozenset[str]:
    """The region codes in a record's own fields (``*_code``, ``*_codes``, ``region``)."""
    if not isinstance(item, dict):
        return frozenset()
    found: set[str] = set()
    for key, value in item.items():
        if not (key.endswith("code") or key.endswith("codes") or key in ("region", "regency", "regencies")):
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and REGION.match(v):
                found.add(v)
    return frozenset(found)


def visible_to(region: str, codes: frozenset[str]) -> bool:
    """A record with no region code is the province's; else a regency office sees it when one
    of its codes lies in the office's region, or covers it (the province's own code)."""
    if not codes:
        return True
    return any(c == region or c.startswith(region + ".") or region.startswith(c + ".") for c in codes)


def items_of(body: Any) -> list | None:
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return body["items"]
    return None


class Sweep:
    def __init__(self, platform: Platform, doc: dict) -> None:
        self.platform = platform
        self.http = platform.http
        self.doc = doc
        self.ops = [Operation(m, p, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS]
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.key = SigningKey.from_files(platform.stack.secrets_dir / "jwt-private.pem")
        self.province_scopes: list[str] = sorted(platform.secrets[PROVINCE]["scopes"])
        self.headers: dict[str, dict[str, str]] = {}
        self._lists: dict[str, asyncio.Future] = {}
        self._instances: dict[str, list[Instance]] = {}
        self.unresolved: dict[str, str] = {}
        self.calls = 0

    # -- plumbing --------------------------------------------------------------------

    def mint(self, scopes, *, subject: str = PROVINCE, region: str | None = None, **extra) -> dict[str, str]:
        """A token for a known client, signed with the platform's key (as the gateway would)."""
        return {"Authorization": f"Bearer {self.key.mint(subject, sorted(scopes), region=region, **extra)}"}

    async def request(self, method: str, url: str, headers: dict[str, str] | None, **kwargs) -> httpx.Response:
        async with self.gate:
            for _ in range(60):
                self.calls += 1
                response = await self.http.request(method.upper(), url, headers=headers or {}, **kwargs)
                if response.status_code != 429:
                    return response
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            return response

    def schema(self, node: dict) -> dict:
        while isinstance(node, dict) and "$ref" in node:
            _, _, kind, name = node["$ref"].split("/", 3)
            node = self.doc["components"][kind][name]
        return node

    def ok_schema(self, op: Operation) -> dict:
        ok = op.spec.get("responses", {}).get("200", {})
        return self.schema(ok.get("content", {}).get("application/json", {}).get("schema", {}))

    def is_list(self, op: Operation) -> bool:
        """A GET answering an array, or a page (an object with an array of ``items``)."""
        if op.method != "get":
            return False
        schema = self.ok_schema(op)
        for variant in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
            variant = self.schema(variant)
            if variant.get("type") == "array":
                return True
            items = self.schema(variant.get("properties", {}).get("items", {}))
            if items.get("type") == "array":
                return True
        return False

    def query_params(self, op: Operation) -> list[dict]:
        return [p for p in op.spec.get("parameters", []) if p.get("in") == "query"]

    def limit(self, op: Operation, most: int = 500) -> dict[str, int]:
        for p in self.query_params(op):
            if p["name"] == "limit":
                schema = self.schema(p.get("schema", {}))
                return {"limit": int(min(schema.get("maximum", most), most))}
        return {}

    # -- finding real records ----------------------------------------------------------

    def list_route(self, template: str) -> Operation | None:
        return next((o for o in self.ops if o.method == "get" and o.path == template and self.is_list(o)), None)

    async def listing(self, url: str, headers: dict[str, str], params: dict) -> tuple[int, Any]:
        key = f"{url}?{sorted(params.items())}|{headers.get('Authorization', '')[-16:]}"
        if key not in self._lists:
            async def fetch() -> tuple[int, Any]:
                response = await self.request("get", url, headers, params=params)
                body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
                return response.status_code, body

            self._lists[key] = asyncio.ensure_future(fetch())  # concurrent askers share one request
        return await self._lists[key]

    async def required_query(self, op: Operation) -> dict | None:
        """Values for an operation's required query parameters, or None when one cannot be found."""
        values: dict[str, Any] = {}
        for p in self.query_params(op):
            if not p.get("required"):
                continue
            schema = self.schema(p.get("schema", {}))
            name = p["name"]
            if "enum" in schema:
                values[name] = schema["enum"][0]
            elif "year" in name and schema.get("type") == "integer":
                values[name] = date.today().year
            elif schema.get("format") == "date":
                values[name] = date.today().isoformat()
            else:
                found = await self.field_values(op.service, name)
                if not found:
                    return None
                values[name] = found[0][0]
        return values

    async def records(self, op: Operation, url: str, headers: dict[str, str]) -> list[dict] | None:
        params = await self.required_query(op)
        if params is None:
            return None
        status, body = await self.listing(url, headers, {**self.limit(op, LISTED), **params})
        return items_of(body) if status == 200 else None

    async def known_records(self, op: Operation, url: str) -> list[dict]:
        """The records of a list as the province and as each regency office list them (so that
        each office's own records are among them)."""
        found: dict[str, dict] = {}
        for who in (PROVINCE, *OFFICES):
            for item in await self.records(op, url, self.headers[who]) or []:
                if isinstance(item, dict):
                    found.setdefault(repr(sorted(item.items())), item)
        return list(found.values())

    async def field_values(self, service: str, name: str) -> list[tuple[Any, frozenset[str]]]:
        """Values of a field called ``name`` in the records of the service's top-level lists."""
        found: list[tuple[Any, frozenset[str]]] = []
        for op in self.ops:
            if op.service != service or op.params or not self.is_list(op):
                continue
            if any(p.get("required") for p in self.query_params(op)):
                continue
            for item in await self.known_records(op, op.path):
                if isinstance(item, dict) and item.get(name) not in (None, "", []):
                    value = item[name]
                    for v in value if isinstance(value, list) else [value]:
                        found.append((v, region_codes(item)))
        # And in the records of nested lists already found (``/incidents/{id}/persons``).
        for op in self.ops:
            if op.service != service or not op.params or not self.is_list(op) or not self._instances.get(op.path):
                continue
            for instance in self._instances[op.path]:
                for item in await self.known_records(op, instance.url):
                    if item.get(name) not in (None, "", []) and not isinstance(item[name], (dict, list)):
                        found.append((item[name], instance.codes | region_codes(item)))
        return list(dict.fromkeys(found))

    @staticmethod
    def value_of(item: dict, param: str) -> Any:
        """The value naming ``item`` in a path parameter ``param``: a member of the collection
        itself is named by its ``id`` (``{person_id}`` of ``/persons``), else by ``code``."""
        if param == "id" or param.endswith("_id"):
            return item.get("id", item.get(param))
        return item.get(param, item.get("code"))

    async def candidates(self, op: Operation, prefix_url: str, prefix_template: str, param: str) -> list[tuple[Any, frozenset[str]]]:
        """Values of ``param`` for the collection at ``prefix``, with their records' regions."""
        collection = self.list_route(prefix_template)
        if collection is not None:
            items = await self.known_records(collection, prefix_url)
            if items:
                return [(self.value_of(i, param), region_codes(i)) for i in items if isinstance(i, dict) and self.value_of(i, param) is not None]
        # Elsewhere in the service: a nested list of the same name (``/incidents/{id}/persons``
        # for ``/persons/{person_id}``), then any of its records with a field of that name.
        last = prefix_template.rsplit("/", 1)[-1]
        for other in self.ops:
            if other.service == op.service and other.params and other.path.endswith("/" + last) and self.is_list(other):
                found = []
                for instance in await self.instances(other):
                    for item in await self.known_records(other, instance.url):
                        if isinstance(item, dict) and self.value_of(item, param) is not None:
                            found.append((self.value_of(item, param), instance.codes | region_codes(item)))
                if found:
                    return found
        return await self.field_values(op.service, param)

    async def instances(self, op: Operation) -> list[Instance]:
        """Concrete URLs of the route that name real records the province's token reads,
        a few per region of the records named."""
        if op.path in self._instances:
            return self._instances[op.path]
        self._instances[op.path] = []  # a route found again while resolving itself has none
        partial = [(op.path, frozenset())]
        for param in op.params:
            next_partial = []
            for url, codes in partial:
                cut = url.index("{" + param + "}")
                template_cut = op.path.index("{" + param + "}")
                values = await self.candidates(op, url[: cut - 1], op.path[: template_cut - 1], param)
                if not values:
                    self.unresolved.setdefault(op.label, f"no record found for {{{param}}}")
                by_region: dict[frozenset, list] = defaultdict(list)
                for value, found_codes in values:
                    if len(by_region[found_codes]) < PER_ROUTE:
                        by_region[found_codes].append(value)
                for found_codes, chosen in by_region.items():
                    for value in chosen:
                        # A region code in the path names a region (reference data), not a record.
                        named = frozenset() if isinstance(value, str) and REGION.match(value) else found_codes
                        next_partial.append((url.replace("{" + param + "}", str(value), 1), codes | named))
            partial = next_partial[: PER_ROUTE * 8]
        result = [Instance(url, codes) for url, codes in partial]
        if op.method == "get" and result:
            # Only URLs the province or an office reads (200) name real records (a webhook
            # subscription is its own client's only).
            params = await self.required_query(op) or {}
            kept, statuses = [], set()
            for instance in result:
                for who in (PROVINCE, *OFFICES):
                    response = await self.request("get", instance.url, self.headers[who], params=params)
                    statuses.add(str(response.status_code))
                    if response.status_code == 200:
                        kept.append(instance)
                        break
            result = kept
            if not result:
                self.unresolved.setdefault(op.label, "no token read any of the records found: " + ", ".join(sorted(statuses)))
        self._instances[op.path] = result
        return result

    async def resolve_all(self) -> None:
        """Find the records of every GET route with path parameters, one route after another
        (shorter paths first, so that nested routes find their parents listed)."""
        for op in sorted((o for o in self.ops if o.method == "get" and o.params and not o.public),
                         key=lambda o: (len(o.params), o.path)):
            await self.instances(op)

    async def any_url(self, op: Operation) -> str:
        """A URL of the route: a real record's when one is known, else well-formed placeholders."""
        if op.method == "get":
            found = await self.instances(op)
            if found:
                return found[0].url
        url = op.path
        for p in op.spec.get("parameters", []):
            if p.get("in") != "path":
                continue
            schema = self.schema(p.get("schema", {}))
            if schema.get("type") == "integer":
                value = "1"
            elif schema.get("format") == "date":
                value = date.today().isoformat()
            elif "enum" in schema:
                value = str(schema["enum"][0])
            elif schema.get("format") == "uuid" or p["name"].endswith("_id"):
                value = str(uuid.uuid4())
            else:
                value = "x"
            url = url.replace("{" + p["name"] + "}", value)
        return url


@pytest.fixture(scope="module")
async def sweep(platform: Platform):
    doc = (await platform.call("GET", "/v1/openapi.json")).json()
    SERVICES.clear()
    SERVICES.update(doc.get("x-pilar-services", {}))
    assert all(state == "ok" for state in doc["x-pilar-services"].values()), doc["x-pilar-services"]
    s = Sweep(platform, doc)
    s.headers[PROVINCE] = await platform.headers(PROVINCE, user="officer.sweep")
    for client in OFFICES:
        s.headers[client] = await platform.headers(client, user="operator.sweep")
    # Each office subscribes to an event of its region, so that the webhook routes have
    # records of each (removed at the end).
    subscriptions = []
    event_type = (await platform.json("GET", "/v1/webhooks/event-types", headers=s.headers[PROVINCE]))[0]["type"]
    for client, region in OFFICES.items():
        made = await platform.json("POST", "/v1/webhooks/subscriptions", headers=s.headers[client], expect=201, json={
            "callback_url": f"https://siks.{client}.example.invalid/pilar/events", "event_types": [event_type], "region": region})
        subscriptions.append((client, made["id"]))
    s.started = time.monotonic()
    await s.resolve_all()
    yield s
    for client, subscription in subscriptions:
        await platform.call("DELETE", f"/v1/webhooks/subscriptions/{subscription}", headers=s.headers[client], expect=(204, 404))


def _is_problem(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0] == "application/problem+json"


def _fail(findings: list[str], what: str) -> None:
    if findings:
        shown = "\n  ".join(sorted(findings)[:400])
        pytest.fail(f"{len(findings)} {what}:\n  {shown}", pytrace=False)


async def test_every_operation_refuses_missing_bad_and_expired_tokens(sweep: Sweep):
    stranger = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = SigningKey(kid=sweep.key.kid, private_pem=stranger).mint(PROVINCE, sweep.province_scopes)
    expired = sweep.key.mint(PROVINCE, sweep.province_scopes, ttl_s=-900)
    tokens = {
        "no token": {},
        "not a JWT": {"Authorization": "Bearer not-a-token"},
        "forged signature": {"Authorization": f"Bearer {forged}"},
        "expired": {"Authorization": f"Bearer {expired}"},
    }
    findings: list[str] = []

    async def one(op: Operation) -> None:
        url = await sweep.any_url(op)
        body = {"json": {}} if "requestBody" in op.spec else {}
        for name, headers in tokens.items():
            response = await sweep.request(op.method, url, headers, **body)
            if response.status_code != 401 or not _is_problem(response):
                findings.append(f"{op.label} with {name}: {response.status_code} "
                                f"{response.headers.get('content-type')} {response.text[:160]}")

    swept = [op for op in sweep.ops if not op.public]
    assert len(swept) > 100, "the merged document lists the platform's operations"
    await asyncio.gather(*(one(op) for op in swept))
    _fail(findings, "operations did not answer 401 problem+json to a caller without a valid token")


def _service_scopes(sweep: Sweep, op: Operation) -> list[str]:
    prefix = f"{op.service}:"
    return [s for s in sweep.province_scopes if s.startswith(prefix)]


def _documented_scopes(op: Operation) -> set[str] | None:
    for requirement in op.spec.get("security") or []:
        for scopes in requirement.values():
            if scopes:
                return set(scopes)
    return None


async def test_every_operation_refuses_a_token_without_its_scope(sweep: Sweep):
    findings: list[str] = []
    learned: dict[str, str] = {}

    async def one(op: Operation) -> None:
        url = await sweep.any_url(op)
        body = {"json": {}} if "requestBody" in op.spec else {}
        own = _service_scopes(sweep, op)
        # A token with scopes of other services only: the gateway refuses it.
        others = [s for s in sweep.province_scopes if s not in own and not s.startswith("gateway:")] or ["registry:read"]
        if op.service != "gateway":
            response = await sweep.request(op.method, url, sweep.mint(others), **body)
            if response.status_code != 403 or not _is_problem(response):
                findings.append(f"{op.label} with no scope of {op.service}: {response.status_code} {response.text[:160]}")
        # The route's own scopes: documented, else learned by probing with each scope of the
        # service alone: those it accepts, and those its 403 answers name as required.
        required = _documented_scopes(op)
        source = "documented"
        if required is None:
            source = "probed"
            required = set()
            for scope in own:
                response = await sweep.request(op.method, url, sweep.mint([scope]), **body)
                if response.status_code == 401:
                    findings.append(f"{op.label} with only {scope}: 401 {response.text[:160]}")
                elif response.status_code == 403:
                    named = set(response.json().get("required_scopes") or [])
                    if not named:
                        findings.append(f"{op.label}: a 403 that names no required_scopes: {response.text[:160]}")
                    required |= named
                else:
                    required.add(scope)
        holder = next((c for c, entry in sweep.platform.secrets.items() if required <= set(entry["scopes"])), None)
        if source == "documented" and holder:
            # The document tells the truth: its scopes alone pass the scope checks (for a
            # client granted them: the gateway honours only scopes the client holds).
            response = await sweep.request(op.method, url, sweep.mint(required, subject=holder), **body)
            if response.status_code == 403 and set(response.json().get("required_scopes") or []) - required:
                findings.append(f"{op.label} documents {', '.join(sorted(required))} but with only those: "
                                f"403 {response.text[:160]}")
        if not required or (source == "probed" and own and required >= set(own)):
            learned[op.label] = "any scope of the service"
            return
        learned[op.label] = f"{' or '.join(sorted(required))} ({source})"
        without = [s for s in sweep.province_scopes if s not in required]
        response = await sweep.request(op.method, url, sweep.mint(without), **body)
        if response.status_code != 403 or not _is_problem(response):
            findings.append(f"{op.label} with every scope but {', '.join(sorted(required))}: "
                            f"{response.status_code} {response.text[:160]}")

    await asyncio.gather(*(one(op) for op in sweep.ops if not op.public))
    print(f"\nscopes of {len(learned)} operations; any scope of the service: "
          f"{sorted(k for k, v in learned.items() if v.startswith('any'))}")
    _fail(findings, "scope findings (a token without the route's scope not refused, or documented scopes not enough)")


async def test_regency_offices_see_only_their_region(sweep: Sweep):
    findings: list[str] = []
    checked: dict[str, int] = defaultdict(int)  # office -> foreign records refused
    own_seen: dict[str, int] = defaultdict(int)

    def check_items(office: str, label: str, body: Any, parent: frozenset[str] = frozenset()) -> None:
        for item in items_of(body) or []:
            if not isinstance(item, dict) or not any(k == "id" or k.endswith("_id") for k in item):
                continue  # not a record (a stock line, a route's hop, a figure)
            codes = region_codes(item) or parent
            if not visible_to(OFFICES[office], codes):
                findings.append(f"{label} as {office}: lists a record of {sorted(codes)}: {str(item)[:160]}")

    async def detail(op: Operation) -> None:
        for instance in await sweep.instances(op):
            params = await sweep.required_query(op) or {}
            for office, region in OFFICES.items():
                response = await sweep.request("get", instance.url, sweep.headers[office], params=params)
                label = f"GET {instance.url} ({op.path})"
                if visible_to(region, instance.codes):
                    if response.status_code == 200:
                        own_seen[office] += 1
                        if sweep.is_list(op):
                            check_items(office, label, response.json(), instance.codes)
                    continue
                checked[office] += 1
                if response.status_code in (403, 404):
                    continue
                if response.status_code == 200 and sweep.is_list(op) and items_of(response.json()) == []:
                    continue  # a filter by another regency's record finds nothing
                findings.append(f"{label} as {office} (record of {sorted(instance.codes)}): "
                                f"{response.status_code} {response.text[:160]}")

    async def listing(op: Operation) -> None:
        params = await sweep.required_query(op)
        if params is None:
            sweep.unresolved.setdefault(op.label, "a required query parameter has no known value")
            return
        regional_filters = [p["name"] for p in sweep.query_params(op) if not p.get("required")
                            and (p["name"].endswith("code") or p["name"] in ("region", "regency"))]
        if params:
            # A required id in the query names a record: another regency's must not be listed.
            for name, value in params.items():
                found = dict(await sweep.field_values(op.service, name))
                codes = found.get(value, frozenset())
                for office, region in OFFICES.items():
                    if not visible_to(region, codes):
                        checked[office] += 1
                        response = await sweep.request("get", op.path, sweep.headers[office], params={**params, **sweep.limit(op)})
                        if response.status_code not in (403, 404) and not (response.status_code == 200 and items_of(response.json()) == []):
                            findings.append(f"{op.label}?{name}={value} as {office} (record of {sorted(codes)}): "
                                            f"{response.status_code} {response.text[:160]}")
        for office in OFFICES:
            for extra in [{}] + [{name: FOREIGN_FILTER} for name in regional_filters]:
                response = await sweep.request("get", op.path, sweep.headers[office], params={**params, **sweep.limit(op), **extra})
                if response.status_code == 403:
                    continue
                if response.status_code != 200:
                    if extra and response.status_code in (404, 422):
                        continue  # a filter outside the office's region may be refused
                    findings.append(f"{op.label} {extra or ''} as {office}: {response.status_code} {response.text[:160]}")
                    continue
                check_items(office, f"{op.label} {extra or ''}", response.json())

    gets = [op for op in sweep.ops if op.method == "get" and not op.public]
    await asyncio.gather(*(detail(op) for op in gets if op.params),
                         *(listing(op) for op in gets if not op.params and sweep.is_list(op)))
    elapsed = time.monotonic() - sweep.started
    print(f"\nforeign records refused per office: {dict(checked)}; own records read: {dict(own_seen)}; "
          f"{sweep.calls} calls in {elapsed:.0f} s")
    if sweep.unresolved:
        print("routes without a real record to try: " + "; ".join(f"{k}: {v}" for k, v in sorted(sweep.unresolved.items())))
    for office in OFFICES:
        assert checked[office] >= 20, f"{office}: too few records of other regencies were tried ({checked[office]})"
        assert own_seen[office] >= 5, f"{office}: its own records were not readable ({own_seen[office]})"
    _fail(findings, "answers showed a regency office another regency's records")


async def test_shelter_caseworkers_see_only_their_cases(sweep: Sweep, platform: Platform):
    admin = sweep.headers[PROVINCE]
    staff = (await platform.call("GET", "/v1/shelter/staff", headers=admin)).json()
    staff = [s for s in staff if s["active"]]
    heads = {s["user_id"]: await platform.headers(SHELTER_APP, user=s["user_id"]) for s in staff}
    seen_by: dict[str, set[str]] = defaultdict(set)  # case id -> users whose list shows it
    cases: dict[str, dict] = {}
    for user, headers in heads.items():
        for case in await platform.all_pages("/v1/shelter/cases", headers=headers, limit=100):
            seen_by[case["id"]].add(user)
            cases[case["id"]] = case
    assert cases, "the demo shelters have open cases"
    findings: list[str] = []
    by_user = {s["user_id"]: s for s in staff}
    case_routes = [op for op in sweep.ops if op.method == "get" and op.service == "shelter" and "case_id" in op.params]
    assert case_routes, "the document lists the shelter's case routes"
    tried = 0
    for case_id, case in cases.items():
        owner = case.get("caseworker_id") or next(u for u in seen_by[case_id] if by_user[u]["role"] == "caseworker")
        shelter = case.get("shelter_id") or by_user[owner]["shelter_id"]
        outsiders = [s["user_id"] for s in staff if s["user_id"] != owner and
                     (s["role"] == "caseworker" or s["shelter_id"] != shelter)]
        for user in outsiders:
            if case_id in {c["id"] for c in await platform.all_pages("/v1/shelter/cases", headers=heads[user], limit=100)}:
                findings.append(f"GET /v1/shelter/cases as {user} ({by_user[user]['role']}) lists case {case_id} of {owner}")
        for op in case_routes:
            url = op.path.replace("{case_id}", case_id)
            if re.search(r"{[^}]+}", url):
                continue  # deeper ids: the case is refused before them
            own = await sweep.request("get", url, heads[owner])
            if own.status_code != 200:
                findings.append(f"GET {url} as its caseworker {owner}: {own.status_code} {own.text[:160]}")
            for user in outsiders:
                tried += 1
                response = await sweep.request("get", url, heads[user])
                if response.status_code not in (403, 404):
                    findings.append(f"GET {url} ({op.path}) as {user} ({by_user[user]['role']}, not assigned): "
                                    f"{response.status_code} {response.text[:160]}")
    print(f"\n{tried} calls by staff not assigned to a case, over {len(case_routes)} routes and {len(cases)} cases")
    _fail(findings, "answers showed a case to staff not assigned to it")
