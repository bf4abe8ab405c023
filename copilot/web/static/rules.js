/* 跟进规则页 (rules.html): approve / reject drafts, preview and save a rule; every change carries the CSRF token. */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function call(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (d) { return { ok: r.ok, status: r.status, data: d }; });
    });
  }

  var draftMsg = document.getElementById("draft-msg");
  var ruleMsg = document.getElementById("rule-msg");

  document.querySelectorAll("button.approve, button.reject").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var verb = btn.classList.contains("approve") ? "approve" : "reject";
      btn.disabled = true;
      call("POST", "/api/rules/drafts/" + encodeURIComponent(btn.dataset.id) + "/" + verb, {}).then(function (res) {
        if (res.ok) { draftMsg.textContent = verb === "approve" ? "已批准，规则已生效。" : "已驳回。"; window.location.reload(); }
        else { btn.disabled = false; draftMsg.textContent = res.data.detail || "操作失败"; }
      });
    });
  });

  var redraft = document.getElementById("redraft");
  if (redraft) redraft.addEventListener("click", function () {
    redraft.disabled = true;
    draftMsg.textContent = "正在起草…";
    call("POST", "/api/rules/drafts", {}).then(function (res) {
      if (res.ok) window.location.reload();
      else { redraft.disabled = false; draftMsg.textContent = res.data.detail || "起草失败"; }
    });
  });

  var form = document.getElementById("rule-form");
  function team() {  // an admin's scope select (managers' rules are always their team's): "" = 全公司
    var select = form.elements.team_id;
    return select && select.value ? select.value : null;
  }
  function values() {
    return {
      expression: form.elements.expression.value, action_type: form.elements.action_type.value,
      description: form.elements.description.value, due_in_days: parseInt(form.elements.due_in_days.value || "3", 10),
      team_id: team()
    };
  }
  document.getElementById("preview-btn").addEventListener("click", function () {
    call("POST", "/api/rules/preview", { expression: form.elements.expression.value, team_id: team() }).then(function (res) {
      ruleMsg.className = res.ok ? "msg" : "msg error";
      ruleMsg.textContent = res.ok
        ? res.data.message + (res.data.names.length ? "：" + res.data.names.join("、") : "")
        : (res.data.detail || "预览失败");
    });
  });
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var id = form.elements.rule_id.value;
    call(id ? "PUT" : "POST", id ? "/api/rules/" + encodeURIComponent(id) : "/api/rules", values()).then(function (res) {
      if (res.ok) { ruleMsg.className = "msg good"; ruleMsg.textContent = "已保存（版本 " + res.data.rule.meta.version + "）。"; window.location.reload(); }
      else { ruleMsg.className = "msg error"; ruleMsg.textContent = res.data.detail || "保存失败"; }
    });
  });
  document.querySelectorAll("button.edit").forEach(function (btn) {
    btn.addEventListener("click", function () {
      form.elements.rule_id.value = btn.dataset.id;
      form.elements.expression.value = btn.dataset.expression;
      form.elements.action_type.value = btn.dataset.action;
      form.elements.description.value = btn.dataset.description;
      if (form.elements.team_id) form.elements.team_id.value = btn.dataset.team;  // an edit keeps the rule's scope
      form.scrollIntoView();
    });
  });
})();
