"""Todo API: a small FastAPI service with the probes Kubernetes needs.

/health answers as soon as the process runs (liveness, startup); /ready answers only once
the app has loaded its settings (readiness), so a pod without its Secret never gets traffic.
"""

import os
import threading
from typing import Dict, List

from fastapi import FastAPI, HTTPException, Response
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field

app = FastAPI(title="todo-backend", version="0.1.0")
app.add_middleware(
    CORSMiddleware,
    allow_origins=[o for o in os.environ.get("CORS_ORIGINS", "http://localhost:3000").split(",") if o],
    allow_methods=["*"],
    allow_headers=["*"],
)


class TodoIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    done: bool = False


class Todo(TodoIn):
    id: int


_lock = threading.Lock()
_todos: Dict[int, Todo] = {}
_next_id = 1


def settings_loaded() -> bool:
    """Ready only when the Secret's values reached the environment."""
    return bool(os.environ.get("SECRET_KEY")) and bool(os.environ.get("DATABASE_URL"))


@app.get("/health")
def health() -> Dict[str, str]:
    return {"status": "ok"}


@app.get("/ready")
def ready(response: Response) -> Dict[str, str]:
    if not settings_loaded():
        response.status_code = 503
        return {"status": "missing SECRET_KEY or DATABASE_URL"}
    return {"status": "ready"}


@app.get("/api/todos", response_model=List[Todo])
def list_todos() -> List[Todo]:
    with _lock:
        return sorted(_todos.values(), key=lambda t: t.id)


@app.post("/api/todos", response_model=Todo, status_code=201)
def create_todo(item: TodoIn) -> Todo:
    global _next_id
    with _lock:
        todo = Todo(id=_next_id, **item.model_dump())
        _todos[todo.id] = todo
        _next_id += 1
        return todo


@app.put("/api/todos/{todo_id}", response_model=Todo)
def update_todo(todo_id: int, item: TodoIn) -> Todo:
    with _lock:
        if todo_id not in _todos:
            raise HTTPException(status_code=404, detail="no such todo")
        _todos[todo_id] = Todo(id=todo_id, **item.model_dump())
        return _todos[todo_id]


@app.delete("/api/todos/{todo_id}", status_code=204)
def delete_todo(todo_id: int) -> Response:
    with _lock:
        if _todos.pop(todo_id, None) is None:
            raise HTTPException(status_code=404, detail="no such todo")
    return Response(status_code=204)
