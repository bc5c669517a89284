"""`/invoice-connections` against the embedded server: every status code and rule of the seed."""

from __future__ import annotations

import pytest
from bobdesk_devtools.testing import public_token, service_token, user_token
from bobdesk_shared.providers import PROVIDERS, Provider
from bson import ObjectId

from ..conftest import API_KEY, WEBHOOK_SECRET

SEED_PROPERTIES = ["id", "client", "provider", "active", "hasCredentials", "hasWebhookSecret", "lastPolledAt",
                   "createdAt", "updatedAt"]


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


# --- create ------------------------------------------------------------------------------------

def test_create_answers_201_with_exactly_the_seed_view(create, company):
    response = create(webhookSecret=WEBHOOK_SECRET, active=True)
    assert response.status_code == 201
    view = response.get_json()
    assert list(view) == SEED_PROPERTIES
    assert view["client"] == str(company.id) and view["provider"] == "yooz" and view["active"] is True
    assert view["hasCredentials"] is True and view["hasWebhookSecret"] is True
    assert view["lastPolledAt"] is None and view["createdAt"] == view["updatedAt"]
    assert view["createdAt"].endswith("Z") and len(view["createdAt"]) == 24
    text = response.get_data(as_text=True)
    assert API_KEY not in text and WEBHOOK_SECRET not in text


def test_create_without_webhook_secret_and_inactive(create):
    view = create(active=False).get_json()
    assert view["active"] is False and view["hasWebhookSecret"] is False and view["hasCredentials"] is True


@pytest.mark.parametrize("body, field", [
    ({"provider": "sage"}, "provider"),
    ({"apiKey": None}, "apiKey"),
    ({"apiKey": ""}, "apiKey"),
    ({"active": "yes"}, "active"),
    ({"webhookSecret": ["a"]}, "webhookSecret"),
    ({"client": str(ObjectId())}, "client"),
    ({"id": str(ObjectId())}, "id"),
])
def test_create_refuses_bad_fields_with_400_and_stores_nothing(create, http, company, db, body, field):
    error = assert_error(create(**body), 400, "validation_error")
    assert field in error["details"], error
    assert db.connections.count_documents({}) == 0


def test_unknown_provider_is_a_400_naming_the_known_ones(create):
    error = assert_error(create(provider="quickbooks"), 400, "validation_error")
    assert "yooz" in str(error["details"])


@pytest.mark.parametrize("data, content_type", [
    ("{not json", "application/json"),
    ('["yooz"]', "application/json"),
    ("null", "application/json"),
    ('"yooz"', "application/json"),
])
def test_malformed_or_non_object_bodies_are_400(http, company, data, content_type):
    response = http.post("/invoice-connections", data=data, content_type=content_type, headers=company.headers)
    assert_error(response, 400)


def test_an_oversized_body_is_413(http, company):
    response = http.post("/invoice-connections", json={"provider": "yooz", "apiKey": "k" * (70 << 10)},
                         headers=company.headers)
    assert_error(response, 413)


def test_one_active_connection_per_provider(create):
    assert create().status_code == 201
    assert_error(create(), 409, "active_connection_exists")
    assert create(active=False).status_code == 201  # inactive ones never conflict
    assert create(active=False).status_code == 201


def test_another_company_may_have_its_own_active_connection(create, other_company):
    assert create().status_code == 201
    assert create(as_company=other_company).status_code == 201


# --- list and tenant isolation -------------------------------------------------------------------

def test_list_holds_active_and_inactive_of_the_company_only(create, http, company, other_company):
    first = create().get_json()
    second = create(active=False).get_json()
    create(as_company=other_company)
    listed = http.get("/invoice-connections", headers=company.headers)
    assert listed.status_code == 200
    assert listed.get_json() == [first, second]


def test_an_empty_list(http, company):
    response = http.get("/invoice-connections", headers=company.headers)
    assert response.status_code == 200 and response.get_json() == []


def test_another_companys_connection_is_a_404_on_every_route(create, http, other_company, db):
    mine = create().get_json()["id"]
    for method, path, body in [("patch", f"/invoice-connections/{mine}", {"active": False}),
                               ("delete", f"/invoice-connections/{mine}", None),
                               ("get", f"/invoice-connections/{mine}/sync", None),
                               ("post", f"/invoice-connections/{mine}/sync", {})]:
        response = getattr(http, method)(path, json=body, headers=other_company.headers)
        assert_error(response, 404, "not_found")
    doc = db.connections.find_one({"_id": ObjectId(mine)})
    assert doc["active"] is True and doc["deleted"] is False


@pytest.mark.parametrize("bad_id", ["nope", "64b2e4d19ab7e72a4fb4ac2", "64b2e4d19ab7e72a4fb4ac2g", str(ObjectId())])
def test_malformed_and_unknown_ids_are_404(http, company, bad_id):
    assert_error(http.patch(f"/invoice-connections/{bad_id}", json={"active": True}, headers=company.headers), 404)
    assert_error(http.delete(f"/invoice-connections/{bad_id}", headers=company.headers), 404)
    assert_error(http.get(f"/invoice-connections/{bad_id}/sync", headers=company.headers), 404)


def test_an_id_in_upper_case_names_nothing_and_no_404_echoes_the_id(create, http, company):
    mine = create().get_json()["id"]
    for requested in (mine.upper(), str(ObjectId()), "nope"):
        for method in ("delete", "get"):
            path = f"/invoice-connections/{requested}" + ("/sync" if method == "get" else "")
            error = assert_error(getattr(http, method)(path, headers=company.headers), 404, "not_found")
            assert requested not in error["message"] and requested.lower() not in error["message"]
    assert http.get(f"/invoice-connections/{mine}/sync", headers=company.headers).status_code == 200


def test_poll_now_takes_a_json_body_or_none(create, http, company):
    path = f"/invoice-connections/{create().get_json()['id']}/sync"
    assert_error(http.post(path, data="full", content_type="text/plain", headers=company.headers), 415,
                 "unsupported_media_type")
    assert http.post(path, headers=company.headers).status_code == 202
    assert http.post(path, json={}, headers=company.headers).status_code == 202


def test_a_cross_site_form_cannot_poll_now(create, http, company, db):
    """A form POST carries the session cookie but cannot be application/json: 415, nothing changes."""
    connection = create().get_json()["id"]
    before = db.connections.find_one({"_id": ObjectId(connection)})
    http.set_cookie("session", user_token(company.id))
    for content_type in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=b"):
        response = http.post(f"/invoice-connections/{connection}/sync", data="a=b", content_type=content_type)
        assert_error(response, 415, "unsupported_media_type")
        response = http.post("/invoice-connections", data="provider=yooz&apiKey=k", content_type=content_type)
        assert_error(response, 415, "unsupported_media_type")
    assert db.connections.find_one({"_id": ObjectId(connection)}) == before
    assert db.connections.count_documents({}) == 1
    assert http.post(f"/invoice-connections/{connection}/sync", json={}).status_code == 202


# --- authentication -------------------------------------------------------------------------------

def test_every_route_needs_a_user_token_with_accounting(http, company):
    some_id = str(ObjectId())
    routes = [("get", "/invoice-connections"), ("post", "/invoice-connections"),
              ("patch", f"/invoice-connections/{some_id}"), ("delete", f"/invoice-connections/{some_id}"),
              ("get", f"/invoice-connections/{some_id}/sync"), ("post", f"/invoice-connections/{some_id}/sync")]
    no_accounting = {"Authorization": f"Bearer {user_token(company.id, permissions=('tickets',))}"}
    wrong_audience = [{"Authorization": f"Bearer {public_token(company.id)}"},
                      {"Authorization": f"Bearer {service_token()}"}]
    for method, path in routes:
        assert_error(getattr(http, method)(path, json={}), 401)
        assert_error(getattr(http, method)(path, json={}, headers={"Authorization": "Bearer x.y.z"}), 401)
        for headers in wrong_audience:
            assert_error(getattr(http, method)(path, json={}, headers=headers), 401)
        assert_error(getattr(http, method)(path, json={}, headers=no_accounting), 403)


def test_the_session_cookie_authenticates(http, company):
    http.set_cookie("session", user_token(company.id))
    assert http.get("/invoice-connections").status_code == 200


# --- update ------------------------------------------------------------------------------------------

def test_patch_rotates_the_key_and_moves_updated_at(create, http, company, db, app):
    created = create().get_json()
    response = http.patch(f"/invoice-connections/{created['id']}", json={"apiKey": "yz_live_sk_rotated_value"},
                          headers=company.headers)
    assert response.status_code == 200
    view = response.get_json()
    assert list(view) == SEED_PROPERTIES and view["hasCredentials"] is True
    assert view["createdAt"] == created["createdAt"] and view["updatedAt"] >= created["updatedAt"]
    doc = db.connections.find_one({"_id": ObjectId(created["id"])})
    assert app.extensions["connection_service"].secrets.open(doc, "apiKey") == "yz_live_sk_rotated_value"
    assert "yz_live_sk_rotated_value" not in response.get_data(as_text=True)


def test_patch_adds_a_webhook_secret(create, http, company):
    created = create().get_json()
    view = http.patch(f"/invoice-connections/{created['id']}", json={"webhookSecret": WEBHOOK_SECRET},
                      headers=company.headers).get_json()
    assert view["hasWebhookSecret"] is True


def test_a_webhook_secret_is_refused_for_a_provider_without_webhooks(create, http, company, db, monkeypatch):
    # The catalogue, not the code, says which providers send webhooks.
    monkeypatch.setitem(PROVIDERS, "yooz", Provider(key="yooz", name="Yooz", supports_webhooks=False))
    assert_error(create(webhookSecret=WEBHOOK_SECRET), 400, "webhooks_not_supported")
    assert db.connections.count_documents({}) == 0
    created = create().get_json()
    assert created["hasWebhookSecret"] is False
    path = f"/invoice-connections/{created['id']}"
    before = db.connections.find_one({"_id": ObjectId(created["id"])})
    for body in ({"webhookSecret": WEBHOOK_SECRET}, {"webhookSecret": WEBHOOK_SECRET, "active": False}):
        assert_error(http.patch(path, json=body, headers=company.headers), 400, "webhooks_not_supported")
    assert db.connections.find_one({"_id": ObjectId(created["id"])}) == before
    assert http.patch(path, json={"active": False}, headers=company.headers).status_code == 200


@pytest.mark.parametrize("body, field", [
    ({}, "_schema"), ({"provider": "yooz"}, "provider"), ({"client": str(ObjectId())}, "client"),
    ({"active": None}, "active"), ({"apiKey": ""}, "apiKey"), ({"lastPolledAt": None}, "lastPolledAt"),
])
def test_patch_refusals_are_400_and_change_nothing(create, http, company, db, body, field):
    created = create().get_json()
    before = db.connections.find_one({"_id": ObjectId(created["id"])})
    error = assert_error(http.patch(f"/invoice-connections/{created['id']}", json=body, headers=company.headers),
                         400, "validation_error")
    assert field in error["details"], error
    assert db.connections.find_one({"_id": ObjectId(created["id"])}) == before


def test_activating_a_second_connection_of_the_provider_is_409(create, http, company):
    create()
    spare = create(active=False).get_json()
    response = http.patch(f"/invoice-connections/{spare['id']}", json={"active": True}, headers=company.headers)
    assert_error(response, 409, "active_connection_exists")
    listed = http.get("/invoice-connections", headers=company.headers).get_json()
    assert [c["active"] for c in listed] == [True, False]


def test_deactivating_then_activating_another(create, http, company):
    first = create().get_json()
    spare = create(active=False).get_json()
    assert http.patch(f"/invoice-connections/{first['id']}", json={"active": False},
                      headers=company.headers).get_json()["active"] is False
    assert http.patch(f"/invoice-connections/{spare['id']}", json={"active": True},
                      headers=company.headers).get_json()["active"] is True


# --- delete ------------------------------------------------------------------------------------------

def test_delete_is_a_soft_delete_that_frees_the_provider(create, http, company, db):
    created = create(webhookSecret=WEBHOOK_SECRET).get_json()
    response = http.delete(f"/invoice-connections/{created['id']}", headers=company.headers)
    assert response.status_code == 204 and response.get_data() == b""
    assert http.get("/invoice-connections", headers=company.headers).get_json() == []
    assert_error(http.patch(f"/invoice-connections/{created['id']}", json={"active": True},
                            headers=company.headers), 404)
    assert_error(http.delete(f"/invoice-connections/{created['id']}", headers=company.headers), 404)
    doc = db.connections.find_one({"_id": ObjectId(created["id"])})
    assert doc["deleted"] is True and doc["active"] is False and "secrets" not in doc  # crypto-shredded
    assert create().status_code == 201


# --- sync status -------------------------------------------------------------------------------------

def test_sync_status_of_a_new_connection_and_poll_now(create, http, company, db):
    created = create().get_json()
    status = http.get(f"/invoice-connections/{created['id']}/sync", headers=company.headers)
    assert status.status_code == 200
    body = status.get_json()
    assert body["connectionId"] == created["id"] and body["lastPolledAt"] is None and body["lastError"] is None
    assert body["consecutiveFailures"] == 0 and body["invoicesIngested"] == 0 and body["nextPollAt"]
    db.connections.update_one({"_id": ObjectId(created["id"])}, {"$set": {"next_poll_at": None}})
    polled = http.post(f"/invoice-connections/{created['id']}/sync", headers=company.headers)
    assert polled.status_code == 202 and polled.get_json()["nextPollAt"] is not None


def test_poll_now_of_an_inactive_connection_is_409(create, http, company):
    created = create(active=False).get_json()
    assert_error(http.post(f"/invoice-connections/{created['id']}/sync", headers=company.headers), 409,
                 "connection_inactive")
    assert http.get(f"/invoice-connections/{created['id']}/sync", headers=company.headers).get_json()[
        "nextPollAt"] is None


# --- documentation -----------------------------------------------------------------------------------

def test_openapi_documents_every_route_error_and_the_seed_examples(http):
    spec = http.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert set(paths["/invoice-connections"]) >= {"get", "post"}
    assert set(paths["/invoice-connections/{connection_id}"]) >= {"patch", "delete"}
    post = paths["/invoice-connections"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["example"]["provider"] == "yooz"
    assert post["responses"]["201"]["content"]["application/json"]["example"]["lastPolledAt"] is None
    patch = paths["/invoice-connections/{connection_id}"]["patch"]
    assert {"200", "400", "404", "409"} <= set(patch["responses"])
    assert {"204", "404"} <= set(paths["/invoice-connections/{connection_id}"]["delete"]["responses"])
    assert not [path for path in paths if path.startswith("/internal")]
    internal = http.get("/internal/openapi.json").get_json()["paths"]
    for path in ("/internal/connections/claim", "/internal/connections/{connection_id}/heartbeat",
                 "/internal/connections/{connection_id}/authorize-ingest"):
        assert path in internal
