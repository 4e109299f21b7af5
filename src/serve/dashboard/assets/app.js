// Live updates without a reload: when a reconcile starts or ends (server-sent events), the page
// fetches itself again and swaps its <main>. Buttons post with fetch and say what happened.
"use strict";
(function () {
  let pending = null;
  async function refresh() {
    pending = null;
    const r = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = doc.querySelector("main");
    const open = [...document.querySelectorAll("main details[open]")].map((d) => d.textContent);
    if (fresh) document.querySelector("main").replaceWith(fresh);
    document.querySelectorAll("main details").forEach((d) => { if (open.includes(d.textContent)) d.open = true; });
    bind();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }
  function bind() {
    document.querySelectorAll("form.reconcile").forEach((f) => {
      f.onsubmit = async (ev) => {
        ev.preventDefault();
        const b = f.querySelector("button");
        b.disabled = true;
        const r = await fetch(f.action, { method: "POST", body: new URLSearchParams(new FormData(f)), credentials: "same-origin" });
        b.textContent = r.ok ? "Queued" : "Refused (" + r.status + ")";
      };
    });
  }
  function listen() {
    const live = document.getElementById("live");
    const es = new EventSource("/events");
    es.onopen = () => live && live.classList.add("on");
    es.onerror = () => live && live.classList.remove("on");
    es.onmessage = () => {
      // A burst of events (start, end) makes one refresh.
      if (!pending) pending = setTimeout(refresh, 150);
    };
  }
  document.addEventListener("DOMContentLoaded", () => {
    bind();
    if (!document.querySelector("form.login")) listen();
  });
})();
