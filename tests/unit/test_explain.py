"""`heddle describe` and `heddle explain` computed from snapshots of examples/bookinfo with
the resources each case adds: what a page says applies, and why a request (logged, or
described) failed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from heddle.api.loader import load_text
from heddle.explain.api import describe_answer, explain_answer
from heddle.explain.describe import describe
from heddle.explain.flags import decode
from heddle.explain.log_lines import last_failure, parse
from heddle.explain.page import render
from heddle.explain.subjects import workload_named
from heddle.explain.traffic import Call
from heddle.explain.why import explain_entry, explain_request
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.access_logs import HEDDLE_TEXT_FIELDS, ISTIO_TEXT_FORMAT

ROOT = Path(__file__).resolve().parents[2]
BOOKINFO = (ROOT / "examples" / "bookinfo" / "mesh.yaml").read_text()
SUBSETS = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v4, labels: {version: v4}}
"""


def vs(subset: str, extra: str = "") -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: "
            f"reviews}}\nspec:\n  hosts: [reviews]\n  http:\n{extra}  - route:\n"
            f"    - destination: {{host: reviews, subset: {subset}}}\n")


def snapshot(*documents: str) -> MeshSnapshot:
    result = load_text("\n---\n".join([BOOKINFO, *documents]), "mesh.yaml")
    assert result.errors == []
    return MeshSnapshot.build(1, result.resources)


def text_of(page: dict[str, Any]) -> str:
    return json.dumps(page["sections"])


def log_line(**fields: str) -> str:
    """A line as Envoy writes Istio's default text format with Heddle's fields."""
    values = {"START_TIME": "2026-01-01T00:00:00.000Z", "REQ(:METHOD)": "GET",
              "REQ(X-ENVOY-ORIGINAL-PATH?:PATH)": "/reviews/0", "PROTOCOL": "HTTP/1.1",
              "RESPONSE_CODE": "200", "RESPONSE_FLAGS": "-",
              "RESPONSE_CODE_DETAILS": "via_upstream",
              "REQ(:AUTHORITY)": "reviews:9080", "DOWNSTREAM_LOCAL_ADDRESS": "127.0.20.2:15001",
              "UPSTREAM_CLUSTER_RAW": "-", "ROUTE_NAME": "default",
              "DYNAMIC_METADATA(envoy.filters.http.ratelimit:limited_by)": "-",
              "RESP(X-HEDDLE-RATELIMIT)": "-"}
    values.update(fields)
    line = f"{ISTIO_TEXT_FORMAT} {HEDDLE_TEXT_FIELDS}"
    for command, value in values.items():
        line = line.replace(f"%{command}%", value)
    return re.sub(r"%[A-Z_]+(\([^)]*\))?%", "-", line)


# --- reading logs -----------------------------------------------------------------------

def test_a_text_access_line_reads_into_istios_field_names_and_heddles() -> None:
    fields = parse(log_line(RESPONSE_CODE="503", RESPONSE_FLAGS="NC",
                            RESPONSE_CODE_DETAILS="cluster_not_found"))
    assert fields is not None
    assert (fields["method"], fields["path"], fields["response_code"]) == ("GET", "/reviews/0",
                                                                           "503")
    assert fields["response_flags"] == "NC" and fields["authority"] == "reviews:9080"
    assert fields["downstream_local_address"] == "127.0.20.2:15001"
    assert fields["ratelimit"] == "-:-" and "downstream_peer" in fields


def test_a_json_access_line_reads_too_and_envoys_own_log_does_not() -> None:
    assert parse('{"response_code": 429, "response_flags": "RL"}') == {
        "response_code": "429", "response_flags": "RL"}
    assert parse("[2026-01-01 00:00:00.000][1][info][main] starting") is None


def test_the_last_failure_is_the_last_line_with_an_error_code_or_a_flag(tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    log.write_text("\n".join([log_line(RESPONSE_CODE="503", RESPONSE_FLAGS="UH"),
                              log_line(RESPONSE_CODE="404", RESPONSE_FLAGS="NR"),
                              log_line(), "[2026][info] Envoy's own line"]))
    found = last_failure(log)
    assert found is not None and found["response_flags"] == "NR"
    (tmp_path / "fine.log").write_text(log_line())
    assert last_failure(tmp_path / "fine.log") is None


def test_response_flags_are_decoded_in_words() -> None:
    assert [flag for flag, _ in decode("UH,URX")] == ["UH", "URX"]
    assert "no cluster" in dict(decode("NC"))["NC"]
    assert decode("-") == []
    assert "does not know" in dict(decode("XYZ"))["XYZ"]


# --- describe ---------------------------------------------------------------------------

def test_describing_a_workload_names_its_service_routes_and_the_subsets_that_select_it() -> None:
    page = describe(snapshot(SUBSETS, vs("v2")), "reviews-v1").to_json()
    text = render(page)
    assert page["title"] == "Workload reviews-v1.default"
    assert "reviews.default.svc.cluster.local ports 9080" in text
    assert "VirtualService default/reviews" in text and "-> reviews subset v2" in text
    assert "subset v1: labels {\"version\": \"v1\"} (selects this workload)" in text
    assert "subset v2: labels {\"version\": \"v2\"} (does not select this workload)" in text


MTLS = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings-port, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  portLevelMtls: {"9080": {mode: DISABLE}}
"""
POLICIES = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-allow}
spec:
  selector: {matchLabels: {app: ratings}}
  rules: [{from: [{source: {principals: [cluster.local/ns/default/sa/bookinfo-reviews]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: b-deny}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: c-audit, annotations: {istio.io/dry-run: "true"}}
spec:
  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{to: [{operation: {paths: [/x]}}]}]
"""


def test_describing_a_workload_shows_mtls_per_port_with_the_deciding_resource() -> None:
    text = render(describe(snapshot(MTLS), "ratings-v1").to_json())
    assert "port 9080: DISABLE (PeerAuthentication default/ratings-port" in text
    assert "portLevelMtls 9080" in text
    other = render(describe(snapshot(MTLS), "details-v1").to_json())
    assert "port 9080: STRICT (PeerAuthentication default/strict" in other


def test_authorization_policies_are_listed_deny_before_allow_with_dry_run_marked() -> None:
    text = render(describe(snapshot(POLICIES), "ratings-v1").to_json())
    deny = text.index("DENY AuthorizationPolicy default/b-deny")
    dry = text.index("DENY (dry-run: logged, not enforced) AuthorizationPolicy default/c-audit")
    allow = text.index("ALLOW AuthorizationPolicy default/a-allow")
    assert deny < allow and dry < allow


def test_describing_a_service_lists_its_workloads_and_a_subset_that_selects_none() -> None:
    page = describe(snapshot(SUBSETS), "reviews").to_json()
    text = render(page)
    assert page["title"] == "Service reviews.default.svc.cluster.local"
    assert "reviews-v3 127.0.20.7" in text
    assert "subset v1: labels {\"version\": \"v1\"} -> reviews-v1" in text
    assert "subset v4: labels {\"version\": \"v4\"} -> NO workload" in text


LOCAL_LIMIT = """apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: details-limit}
spec:
  targetRefs: [{group: "", kind: Service, name: details}]
  rateLimit:
    local:
      rules:
      - clientSelectors: [{path: {type: PathPrefix, value: /details/limited}}]
        limit: {requests: 2, unit: Minute}
"""


def test_describe_shows_the_rate_limits_on_the_workloads_service() -> None:
    text = render(describe(snapshot(LOCAL_LIMIT), "details-v2").to_json())
    assert "BackendTrafficPolicy default/details-limit (Local)" in text
    assert "rule 0: 2 per minute when path prefix /details/limited" in text


def test_describing_a_name_that_is_nothing_says_what_there_is() -> None:
    code, body = describe_answer(snapshot(), "reveiws")
    assert code == 404 and "reviews" in body["error"]


# --- explain a described request -----------------------------------------------------

def test_a_route_to_an_undefined_subset_is_nc_naming_the_subset_and_rule() -> None:
    mesh = snapshot(SUBSETS, vs("v9"))
    page = explain_request(mesh, workload_named(mesh, "productpage-v1"),
                           Call(host="reviews", port=9080, path="/reviews/0")).to_json()
    assert page["facts"]["missing_subset"] == "v9"
    assert page["facts"]["destination_rule"] == ["default/reviews"]
    assert page["facts"]["virtual_service"] == "default/reviews"
    assert "(NC)" in page["summary"] and "one of v1, v2, v4" in page["summary"]


def test_a_subset_that_selects_no_workload_is_uh() -> None:
    mesh = snapshot(SUBSETS, vs("v4"))
    page = explain_request(mesh, workload_named(mesh, "productpage-v1"),
                           Call(host="reviews", port=9080, path="/")).to_json()
    assert "(UH)" in page["summary"] and "subset v4" in page["summary"]
    assert "endpoints NONE" in text_of(page)


def test_a_request_no_route_matches_is_nr() -> None:
    only = vs("v1").replace("  - route:", "  - match: [{uri: {prefix: /only}}]\n    route:")
    mesh = snapshot(SUBSETS, only)
    page = explain_request(mesh, workload_named(mesh, "productpage-v1"),
                           Call(host="reviews", port=9080, path="/else")).to_json()
    assert "(NR, 404)" in page["summary"]


def test_a_deny_rule_that_matches_names_policy_and_rule_and_others_pass() -> None:
    mesh = snapshot(POLICIES)
    reviews = workload_named(mesh, "reviews-v2")
    denied = explain_request(mesh, reviews, Call(host="ratings", port=9080, method="DELETE",
                                                 path="/ratings/0")).to_json()
    assert denied["facts"]["policy"] == "default/b-deny" and denied["facts"]["rule"] == 0
    assert "ratings-v1 denies it (403)" in denied["summary"]
    allowed = explain_request(mesh, reviews, Call(host="ratings", port=9080,
                                                  path="/x")).to_json()
    assert "allowed" in allowed["summary"]
    assert "DENY (dry-run): ns[default]-policy[c-audit]-rule[0] matched" in text_of(allowed)


def test_a_caller_no_allow_rule_names_is_denied() -> None:
    mesh = snapshot(POLICIES)
    page = explain_request(mesh, workload_named(mesh, "productpage-v1"),
                           Call(host="ratings", port=9080, path="/ratings/0")).to_json()
    assert page["facts"]["policy"] == "none"
    assert "no ALLOW rule matched" in page["summary"]


def test_a_source_whose_route_does_not_reach_the_workload_is_told_so() -> None:
    mesh = snapshot(SUBSETS, vs("v2"))
    code, page = explain_answer(mesh, {"workload": "reviews-v1", "source": "productpage-v1",
                                       "request": {"host": "reviews", "path": "/"}})
    assert code == 200
    assert "does not reach reviews-v1: it goes to reviews-v2" in page["summary"]


def test_bad_questions_are_refused_with_what_to_fix() -> None:
    mesh = snapshot()
    assert explain_answer(mesh, {"workload": "nobody", "request": {"host": "x"}})[0] == 404
    code, body = explain_answer(mesh, {"workload": "client", "request": {}})
    assert code == 400 and "--host" in body["error"]


# --- explain a logged failure -----------------------------------------------------------

def entry(**fields: str) -> dict[str, str]:
    found = parse(log_line(**fields))
    assert found is not None
    return found


def test_a_logged_nc_names_the_missing_subset() -> None:
    mesh = snapshot(SUBSETS, vs("v9"))
    page = explain_entry(mesh, workload_named(mesh, "productpage-v1"), entry(
        RESPONSE_CODE="503", RESPONSE_FLAGS="NC", RESPONSE_CODE_DETAILS="cluster_not_found",
        ROUTE_NAME="default.reviews.0")).to_json()
    assert page["facts"]["missing_subset"] == "v9" and page["facts"]["flags"] == ["NC"]
    assert "NC: no cluster" in text_of(page)


def test_a_logged_rbac_denial_names_the_policy_and_rule_as_written() -> None:
    mesh = snapshot(POLICIES)
    page = explain_entry(mesh, workload_named(mesh, "ratings-v1"), entry(
        RESPONSE_CODE="403", DOWNSTREAM_LOCAL_ADDRESS="127.0.20.8:9080",
        RESPONSE_CODE_DETAILS="rbac_access_denied_matched_policy[ns[default]-policy[b-deny]"
                              "-rule[0]]")).to_json()
    assert page["summary"] == "denied by AuthorizationPolicy default/b-deny (DENY) rule[0]"
    assert '\\"methods\\": [\\"DELETE\\"]' in text_of(page)
    none = explain_entry(mesh, workload_named(mesh, "ratings-v1"), entry(
        RESPONSE_CODE="403", DOWNSTREAM_LOCAL_ADDRESS="127.0.20.8:9080",
        RESPONSE_CODE_DETAILS="rbac_access_denied_matched_policy[none]")).to_json()
    assert "no ALLOW policy's rule matched it (default/a-allow)" in none["summary"]


def test_a_logged_429_names_the_rate_limit_rule_from_the_log() -> None:
    mesh = snapshot(LOCAL_LIMIT)
    page = explain_entry(mesh, workload_named(mesh, "details-v1"), entry(
        RESPONSE_CODE="429", RESPONSE_FLAGS="RL", DOWNSTREAM_LOCAL_ADDRESS="127.0.20.3:9080",
        **{"RESP(X-HEDDLE-RATELIMIT)": "default/details-limit/local/0"})).to_json()
    assert page["facts"]["rate_limit_policy"] == "default/details-limit"
    assert "rule 0 (2 per minute, local)" in page["summary"]


def test_an_error_the_upstream_answered_points_at_its_log() -> None:
    mesh = snapshot()
    page = explain_entry(mesh, workload_named(mesh, "client"), entry(
        RESPONSE_CODE="403", DOWNSTREAM_LOCAL_ADDRESS="127.0.20.1:15001",
        UPSTREAM_CLUSTER_RAW="outbound|9080||ratings.default.svc.cluster.local",
        UPSTREAM_HOST="127.0.20.8:9080")).to_json()
    assert "ratings-v1 answered 403 itself" in page["summary"]
    assert "heddle explain ratings-v1 --last-failure" in page["summary"]


@pytest.mark.parametrize("verb", [["describe", "reviews"],
                                  ["explain", "productpage-v1", "--host", "reviews"]])
def test_the_cli_answers_offline_from_files(tmp_path: Path, verb: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from heddle.cli.main import main

    (tmp_path / "mesh.yaml").write_text("\n---\n".join([BOOKINFO, SUBSETS, vs("v9")]))
    with pytest.raises(SystemExit) as exit:
        main([*verb, "-f", str(tmp_path)])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    assert "subset v9" in out


def test_a_request_from_a_source_defaults_to_the_workloads_service() -> None:
    mesh = snapshot(POLICIES)
    code, page = explain_answer(mesh, {"workload": "ratings-v1", "source": "reviews-v2",
                                       "request": {"method": "DELETE", "path": "/ratings/0"}})
    assert code == 200
    assert page["title"] == "reviews-v2.default: DELETE ratings.default.svc.cluster.local:9080" \
        "/ratings/0"
    assert page["facts"]["policy"] == "default/b-deny"
