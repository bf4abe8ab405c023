// Web chat: streams answers from /api/chat/stream with the session cookie and renders them with their citations.
(function () {
  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("message");
  const customer = document.getElementById("customer");
  // Every state change carries the session's CSRF token (the server refuses cookie requests without it).
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const jsonHeaders = { "Content-Type": "application/json", "X-CSRF-Token": csrfMeta ? csrfMeta.content : "" };
  let conversationId = null; // the server keeps the thread: focus customer, pending change, last turns

  function add(cls, text) {
    const div = document.createElement("div");
    div.className = "msg " + cls;
    div.textContent = text;
    log.appendChild(div);
    log.scrollTop = log.scrollHeight;
    return div;
  }

  async function post(url, body) {
    const res = await fetch(url, {
      method: "POST",
      headers: jsonHeaders,
      credentials: "same-origin",
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* empty body */ }
    return { ok: res.ok, data };
  }

  function button(text, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "small";
    b.textContent = text;
    b.addEventListener("click", onClick);
    return b;
  }

  // Reps rate the talk tracks they were given; ratings feed retrieval ranking.
  function ratingButtons(citation) {
    const span = document.createElement("span");
    span.className = "rate";
    for (const rating of ["有效", "部分有效", "无效"]) {
      span.appendChild(button(rating, async () => {
        const r = await post("/api/kb/ratings", { chunk_id: citation.ref, rating });
        span.textContent = r.ok ? `已评价：${rating}` : (r.data.detail || "评价失败");
      }));
    }
    return span;
  }

  function renderCitations(div, citations) {
    if (!citations || !citations.length) return;
    // Sources fold away under the answer: the answer reads first, the quotes are one click away.
    const box = document.createElement("details");
    box.className = "sources";
    const summary = document.createElement("summary");
    summary.textContent = `依据（${citations.length}）`;
    box.appendChild(summary);
    const ol = document.createElement("ol");
    ol.className = "cites";
    for (const c of citations) {
      const li = document.createElement("li");
      const label = document.createElement("strong");
      label.textContent = c.label;
      const quote = document.createElement("q");
      quote.textContent = c.quote;
      li.append(label, "：", quote);
      if (c.kind === "kb") li.appendChild(ratingButtons(c));
      ol.appendChild(li);
    }
    box.appendChild(ol);
    div.appendChild(box);
  }

  // A proposed CRM change waits for the rep: 确认 writes it (once), 取消 drops it.
  function renderProposal(change) {
    if (!change || change.status !== "pending") return;
    const actions = add("bot actions", "");
    actions.appendChild(button("确认写入 CRM", () => ask("确认")));
    actions.appendChild(button("取消", () => ask("算了")));
  }

  function renderClarify(clarify) {
    if (!clarify || !clarify.options || !clarify.options.length) return;
    const actions = add("bot actions", "");
    for (const o of clarify.options) actions.appendChild(button(`${o.n}. ${o.label}`, () => ask(String(o.n))));
  }

  // Suggestions: confirm (writes to the CRM, idempotent) or dismiss, right in the chat.
  function renderSuggestions(suggestions) {
    for (const s of suggestions || []) {
      const card = add("bot suggestion", "");
      const title = document.createElement("strong");
      title.textContent = `建议：${s.title}`;
      const why = document.createElement("p");
      why.textContent = s.rationale;
      card.append(title, why);
      renderCitations(card, s.citations);
      const actions = document.createElement("div");
      actions.className = "actions";
      const status = document.createElement("span");
      status.className = "muted";
      if (s.proposed_change) {
        actions.appendChild(button("采纳并写入 CRM", async () => {
          const r = await post(`/api/suggestions/${s.id}/apply`, {});
          status.textContent = r.ok ? "已确认，已提交 CRM" : (r.data.detail || "操作失败");
        }));
      } else {
        actions.appendChild(button("采纳", async () => {
          const r = await post(`/api/suggestions/${s.id}/feedback`, { action: "accept" });
          status.textContent = r.ok ? "已采纳" : (r.data.detail || "操作失败");
        }));
      }
      actions.appendChild(button("忽略", async () => {
        const r = await post(`/api/suggestions/${s.id}/feedback`, { action: "dismiss", comment: "不相关" });
        status.textContent = r.ok ? "已忽略" : (r.data.detail || "操作失败");
      }));
      actions.appendChild(status);
      card.appendChild(actions);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    ask(message);
  });

  // The answer streams in (POST /api/chat/stream, server-sent events): "delta" events append text as it is
  // written; the "final" event carries the whole reply, whose (validated) text replaces the streamed one,
  // followed by its citations, suggestion cards and confirm buttons.
  function render(div, data) {
    conversationId = data.conversation_id || conversationId;
    div.textContent = data.answer;
    if (data.note) add("note", data.note);
    renderCitations(div, data.citations);
    renderSuggestions(data.suggestions);
    renderProposal(data.proposed_change);
    renderClarify(data.clarify);
  }

  function parseEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return { name, data: data.length ? JSON.parse(data.join("\n")) : null };
  }

  async function ask(message) {
    add("me", message);
    const pending = add("bot streaming", "思考中…");
    try {
      const body = { message };
      if (conversationId) body.conversation_id = conversationId;
      if (customer.value) body.customer_id = customer.value;
      const res = await fetch("/api/chat/stream", {
        method: "POST",
        headers: { ...jsonHeaders, Accept: "text/event-stream" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      if (!res.ok || !res.body) {
        let data = {};
        try { data = await res.json(); } catch (e) { /* empty body */ }
        pending.textContent = data.detail || "请求失败，请稍后再试。";
        return;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let text = "";
      let done = false;
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (event.name === "delta") {
            text += event.data.text;
            pending.textContent = text;
            log.scrollTop = log.scrollHeight;
          } else if (event.name === "final") {
            render(pending, event.data);
            done = true;
          } else if (event.name === "error") {
            pending.textContent = event.data.detail || "请求失败，请稍后再试。";
            done = true;
          }
        }
      }
      if (!done) pending.textContent = (text ? text + "\n" : "") + "（连接中断，请重试。）";
    } catch (err) {
      pending.textContent = "网络错误，请稍后再试。";
    } finally {
      pending.classList.remove("streaming");
    }
  }
})();
