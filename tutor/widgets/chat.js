// A chat with the tutor about the notebook: the turns (Markdown rendered and sanitised by the
// kernel), a status line, and a form. Questions go back to Python as {type: "ask", text}.
// Enter sends, Shift+Enter starts a new line, as in every chat.

function render({ model, el }) {
  const root = document.createElement("section");
  root.className = "tutor-panel tutor-chat";
  const title = document.createElement("div");
  title.className = "tutor-title";
  title.textContent = "Ask the tutor";
  const log = document.createElement("div");
  log.className = "tutor-chat-log";
  log.setAttribute("aria-live", "polite");
  const status = document.createElement("div");
  status.className = "tutor-status";
  const progress = loadingBar();
  const form = document.createElement("form");
  form.className = "tutor-chat-form";
  const input = document.createElement("textarea");
  input.className = "tutor-chat-input";
  input.rows = 1;
  input.placeholder = "Ask about your code... (Enter sends, Shift+Enter for a new line)";
  // Keys typed here are the student's, not JupyterLab's shortcuts (Shift+Enter would run the cell).
  input.dataset.lmSuppressShortcuts = "true";
  input.setAttribute("aria-label", "Question for the tutor");
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "tutor-button";
  send.textContent = "Ask";
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "tutor-button";
  stop.textContent = "Stop";
  stop.addEventListener("click", () => model.send({ type: "stop" }));
  form.append(input, send, stop);
  root.append(title, log, progress, status, form);
  el.appendChild(root);

  function ask() {
    const text = input.value.trim();
    if (!text || model.get("state") === "working") return;
    model.send({ type: "ask", text });
    input.value = "";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    // Neither Enter nor Shift+Enter reaches the notebook; and JupyterLab cancels Shift+Enter's default
    // (it is "run the cell" there), so the new line is put in here.
    event.stopPropagation();
    event.preventDefault();
    if (event.shiftKey) {
      input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    } else {
      ask();
    }
  });

  function update() {
    log.replaceChildren();
    for (const turn of model.get("turns")) {
      const div = document.createElement("div");
      div.className = "tutor-chat-turn";
      div.dataset.role = turn.role;
      div.innerHTML = turn.html; // rendered by tutor.widgets.markdown: no raw HTML, allow-listed tags
      log.appendChild(div);
    }
    log.scrollTop = log.scrollHeight;
    status.textContent = model.get("status");
    showProgress(progress, model.get("progress"));
    root.dataset.state = model.get("state");
    send.disabled = model.get("state") === "working";
    stop.disabled = model.get("state") !== "working";
  }
  model.on("change", update);
  update();
  return () => model.off("change", update);
}

// A model load's progress, as in panel.js (each widget's ESM is one file, loaded on its own).
function loadingBar() {
  const progress = document.createElement("progress");
  progress.className = "tutor-progress";
  progress.max = 1;
  progress.setAttribute("aria-label", "Loading the tutor's model");
  return progress;
}

function showProgress(progress, fraction) {
  progress.hidden = !(fraction >= 0);
  if (fraction >= 0) progress.value = fraction;
}

export default { render };
