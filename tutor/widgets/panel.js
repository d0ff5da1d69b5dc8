// The tutor's panel: a heading, Markdown rendered (and sanitised) by the kernel, a status line,
// and buttons. Clicks go back to Python as {type: "click", id}; everything else is state.

function render({ model, el }) {
  const root = document.createElement("section");
  root.className = "tutor-panel";
  root.setAttribute("aria-live", "polite");
  const title = document.createElement("div");
  title.className = "tutor-title";
  const body = document.createElement("div");
  body.className = "tutor-body";
  const status = document.createElement("div");
  status.className = "tutor-status";
  const progress = loadingBar();
  const bar = document.createElement("div");
  bar.className = "tutor-buttons";
  root.append(title, body, progress, status, bar);
  el.appendChild(root);

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied: paste it into a new cell.";
    } catch {
      status.textContent = "Copying was not allowed by the browser; select the code and copy it.";
    }
  }

  function update() {
    title.textContent = model.get("title");
    root.dataset.kind = model.get("kind");
    root.dataset.state = model.get("state");
    // The HTML comes from tutor.widgets.markdown: Markdown without raw HTML, then an allow-list.
    body.innerHTML = model.get("html");
    status.textContent = model.get("status");
    showProgress(progress, model.get("progress"));
    bar.replaceChildren();
    for (const button of model.get("buttons")) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "tutor-button";
      b.dataset.id = button.id;
      b.textContent = button.label;
      b.disabled = !!button.disabled;
      if (button.insert) {
        // The tutor's JupyterLab extension listens for this and inserts a new cell below the one
        // this panel belongs to (the student's cell is never touched). Elsewhere: the clipboard.
        b.addEventListener("click", () => {
          const event = new CustomEvent("tutor:insert-cell", {
            detail: { code: button.insert }, bubbles: true, cancelable: true,
          });
          el.dispatchEvent(event);
          if (event.defaultPrevented) status.textContent = "Inserted in a new cell below.";
          else copy(button.insert);
        });
      } else if (button.copy) {
        b.addEventListener("click", () => copy(button.copy));
      } else {
        b.addEventListener("click", () => model.send({ type: "click", id: button.id }));
      }
      bar.appendChild(b);
    }
  }
  model.on("change", update);
  update();
  return () => model.off("change", update);
}

// A model load's progress (the kernel sets "progress" in [0, 1] while the first answer waits; < 0: none).
// chat.js has the same two functions: each widget's ESM is one file, loaded on its own.
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
