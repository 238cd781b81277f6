from fastapi.testclient import TestClient

from app.main import app

client = TestClient(app)


def test_health_is_always_ok():
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_needs_the_secret(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert client.get("/ready").status_code == 503
    monkeypatch.setenv("SECRET_KEY", "x")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    assert client.get("/ready").status_code == 200


def test_create_and_list():
    created = client.post("/api/todos", json={"title": "write tests"}).json()
    assert created["title"] == "write tests"
    assert created in client.get("/api/todos").json()
