// Web chat: posts to /api/chat with the session cookie and renders answers with their citations.
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("message");
  const customer = document.getElementById("customer");

  function add(cls, text) {
    const div = document.createElement("div");
    div.className = "msg " + cls;
    div.textContent = text;
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  function renderCitations(div, citations) {
    if (!citations || !citations.length) return;
    const ol = document.createElement("ol");
    ol.className = "cites";
    for (const c of citations) {
      const li = document.createElement("li");
      const label = document.createElement("strong");
      label.textContent = c.label;
      const quote = document.createElement("q");
      quote.textContent = c.quote;
      li.append(label, "：", quote);
      ol.appendChild(li);
    }
    div.appendChild(ol);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    add("me", message);
    input.value = "";
    const pending = add("bot", "思考中…");
    try {
      const body = { message };
      if (customer.value) body.customer_id = customer.value;
      const res = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      const data = await res.json();
      if (!res.ok) {
        pending.textContent = data.detail || "请求失败，请稍后再试。";
        return;
      }
      pending.textContent = data.answer;
      if (data.note) add("note", data.note);
      renderCitations(pending, data.citations);
    } catch (err) {
      pending.textContent = "网络错误，请稍后再试。";
    }
  });
})();
