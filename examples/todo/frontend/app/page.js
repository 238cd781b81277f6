"use client";

import { useEffect, useState } from "react";

// Baked in at build time; the browser reaches the backend through devenv's port-forward.
const API = process.env.NEXT_PUBLIC_API_URL || "http://localhost:8000";

export default function Home() {
  const [todos, setTodos] = useState([]);
  const [title, setTitle] = useState("");
  const [error, setError] = useState("");

  async function load() {
    try {
      const res = await fetch(`${API}/api/todos`);
      setTodos(await res.json());
      setError("");
    } catch (e) {
      setError(`cannot reach the backend at ${API}`);
    }
  }

  async function add(event) {
    event.preventDefault();
    if (!title.trim()) return;
    await fetch(`${API}/api/todos`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title }),
    });
    setTitle("");
    load();
  }

  useEffect(() => {
    load();
  }, []);

  return (
    <main>
      <h1>Todo</h1>
      {error && <p role="alert">{error}</p>}
      <form onSubmit={add}>
        <label htmlFor="title">New todo </label>
        <input id="title" value={title} onChange={(e) => setTitle(e.target.value)} />
        <button type="submit">Add</button>
      </form>
      <ul>
        {todos.map((t) => (
          <li key={t.id}>{t.title}</li>
        ))}
      </ul>
    </main>
  );
}
