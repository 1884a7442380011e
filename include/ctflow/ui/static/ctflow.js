// ctflow view: links out of Airflow's plugin frame, and the two actions of the pipeline page.
// No library; same-origin requests carry Airflow's login cookie, and the server forwards them to
// Airflow's REST API as this user.
(function () {
  "use strict";

  // Airflow shows this view in a sandboxed iframe (no top navigation, no popups, no dialogs).
  // Links meant for the whole window (Airflow pages) or a new tab (MLflow) are followed from
  // Airflow's own document, which is same-origin; outside the frame the browser does it.
  document.addEventListener("click", function (event) {
    var a = event.target && event.target.closest ? event.target.closest("a[target]") : null;
    if (!a || window.top === window.self || event.defaultPrevented) return;
    var target = a.getAttribute("target");
    if (target !== "_top" && target !== "_blank") return;
    try {
      var doc = window.top.document;
      var proxy = doc.createElement("a");
      proxy.href = a.href;
      proxy.target = target === "_blank" ? "_blank" : "_self";
      if (target === "_blank") proxy.rel = "noopener noreferrer";
      proxy.style.display = "none";
      doc.body.appendChild(proxy);
      proxy.click();
      proxy.remove();
      event.preventDefault();
    } catch (err) { /* a cross-origin parent: leave the link to the browser */ }
  });
})();

(function () {
  "use strict";
  // Wall-clock times (<time class="clock">) are written in Airflow's default time zone; if the user
  // picked another zone in Airflow's UI (kept in localStorage "timezone", same origin), use it.
  var zone = null;
  try {
    var saved = window.localStorage.getItem("timezone");
    if (saved) zone = saved.charAt(0) === '"' ? JSON.parse(saved) : saved;
  } catch (err) { zone = null; }
  if (!zone || zone === document.body.getAttribute("data-timezone")) return;
  var format;
  try {
    format = new Intl.DateTimeFormat("sv-SE", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short" });
  } catch (err) { return; }  // not a zone this browser knows: keep Airflow's default
  Array.prototype.forEach.call(document.querySelectorAll("time.clock[datetime]"), function (el) {
    el.textContent = format.format(new Date(el.getAttribute("datetime")));
    el.title = "wall-clock time in " + zone + " (your Airflow setting)";
  });
  var shown = document.getElementById("shown-zone");
  if (shown) shown.textContent = zone;
})();

(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";
  var airflowRoot = body.getAttribute("data-airflow-root") || "";
  var head = document.getElementById("pipeline");
  var result = document.getElementById("action-result");
  if (!head || !result) return;
  var pipeline = head.getAttribute("data-pipeline");

  function show(kind, node) {
    result.className = "result " + kind;
    result.textContent = "";
    result.appendChild(node);
  }

  function text(s) { return document.createTextNode(s); }

  function disarm(button) {
    if (button.getAttribute("data-armed") !== "1") return;
    button.removeAttribute("data-armed");
    button.textContent = button.getAttribute("data-label");
  }

  function submit(form, event) {
    event.preventDefault();
    var action = form.getAttribute("data-action");
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      if (el.type === "checkbox") data[el.name] = el.checked;
      else if (el.value.trim() !== "") data[el.name] = el.type === "number" ? Number(el.value) : el.value.trim();
    });
    if (action === "rollback" && !data.reason) { show("error", text("A rollback needs a reason.")); return; }
    if (action === "retrain" && data.force_promotion && !data.reason) {
      show("error", text("A forced promotion needs a reason.")); return;
    }
    // A second click confirms (window.confirm is blocked in Airflow's sandboxed frame).
    var button = form.querySelector("button");
    if (button.getAttribute("data-armed") !== "1") {
      button.setAttribute("data-armed", "1");
      button.setAttribute("data-label", button.textContent);
      button.textContent = "Click again to confirm";
      show("", text(action === "rollback"
        ? "This triggers a rollback run of ct_" + pipeline + "."
        : "This triggers a training run of ct_" + pipeline + "."));
      window.setTimeout(function () { disarm(button); }, 10000);
      return;
    }
    disarm(button);
    button.disabled = true;
    show("", text("Sending…"));
    fetch(base + "/api/pipelines/" + encodeURIComponent(pipeline) + "/" + action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(data)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (payload) {
        button.disabled = false;
        if (!response.ok) {
          var detail = payload.detail;
          if (typeof detail !== "string") detail = JSON.stringify(detail || payload);
          show("error", text("Refused (" + response.status + "): " + detail));
          return;
        }
        follow(payload, action === "rollback" ? "Rollback" : "Training");
      });
    }).catch(function (err) {
      button.disabled = false;
      show("error", text("Request failed: " + err));
    });
  }

  // The triggered run, followed to its end: its state every few seconds, then the page reloads to
  // show what the run changed. On a paused DAG it says so and offers to unpause it.
  function follow(run, label) {
    var span = document.createElement("span");
    span.id = "triggered-run";
    span.setAttribute("data-run-id", run.dag_run_id);
    span.appendChild(text(label + " run "));
    var a = document.createElement("a");
    a.href = airflowRoot + "/dags/" + encodeURIComponent(run.dag_id) + "/runs/" + encodeURIComponent(run.dag_run_id);
    a.target = "_top";
    a.textContent = run.dag_run_id;
    span.appendChild(a);
    span.appendChild(text(": "));
    var state = document.createElement("b");
    state.id = "triggered-state";
    state.textContent = run.state;
    span.appendChild(state);
    if (run.paused) {
      var warn = document.createElement("span");
      warn.className = "warn";
      warn.id = "paused-note";
      warn.appendChild(text(" · " + run.dag_id + " is paused: the run waits until it is unpaused. "));
      var unpause = document.createElement("button");
      unpause.type = "button";
      unpause.textContent = "Unpause " + run.dag_id;
      unpause.addEventListener("click", function () { unpauseDag(unpause, warn); });
      warn.appendChild(unpause);
      span.appendChild(warn);
    }
    show(run.paused ? "warn" : "ok", span);
    poll(run, state);
  }

  function poll(run, state) {
    fetch(base + "/api/pipelines/" + encodeURIComponent(pipeline) + "/runs/" + encodeURIComponent(run.dag_run_id), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) { return response.ok ? response.json() : null; }).then(function (now) {
      if (now) state.textContent = now.state + (now.awaiting_approval ? " (awaiting approval)" : "");
      if (now && now.finished) {
        state.setAttribute("data-finished", now.state);
        window.location.reload();
        return;
      }
      window.setTimeout(function () { poll(run, state); }, 3000);
    }).catch(function () { window.setTimeout(function () { poll(run, state); }, 10000); });
  }

  function unpauseDag(button, note) {
    button.disabled = true;
    fetch(base + "/api/pipelines/" + encodeURIComponent(pipeline) + "/unpause", {
      method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" }  // no body: nothing to state
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (payload) {
        if (!response.ok) {
          button.disabled = false;
          note.appendChild(text(" Refused (" + response.status + "): " + (payload.detail || "")));
          return;
        }
        var banner = document.getElementById("paused-warning");
        note.textContent = (note === banner ? "" : " · ") + payload.dag_id + " is unpaused: queued runs start.";
        if (banner && note !== banner) banner.remove();
      });
    });
  }

  var pausedButton = document.getElementById("unpause-button");
  if (pausedButton) {
    pausedButton.addEventListener("click", function () {
      var banner = document.getElementById("paused-warning");
      unpauseDag(pausedButton, banner);
    });
  }

  ["retrain-form", "rollback-form"].forEach(function (id) {
    var form = document.getElementById(id);
    if (form) form.addEventListener("submit", function (event) { submit(form, event); });
  });
})();
