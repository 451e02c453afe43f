/* The console's JSON editor: CodeMirror over the body's textarea (the textarea alone if
   CodeMirror did not load), a check that the text is JSON as it is typed, and header rows
   added on request. The server checks the body against the event's model regardless. */
(function () {
  "use strict";
  var area = document.getElementById("edit-body");
  if (!area) { return; }
  var status = document.getElementById("json-status");
  var editor = null;
  if (window.CodeMirror) {
    editor = window.CodeMirror.fromTextArea(area, {
      mode: { name: "javascript", json: true },
      lineNumbers: true,
      matchBrackets: true,
      autoCloseBrackets: true,
      tabSize: 2,
      indentUnit: 2,
      viewportMargin: Infinity
    });
  }
  function text() { return editor ? editor.getValue() : area.value; }
  function check() {
    try {
      var value = JSON.parse(text());
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error("the body must be one JSON object (an event)");
      }
      status.textContent = "JSON: well-formed (the server checks it against the event's model)";
      status.className = "ok";
      return true;
    } catch (error) {
      status.textContent = "JSON: " + error.message;
      status.className = "bad";
      return false;
    }
  }
  if (editor) { editor.on("change", check); } else { area.addEventListener("input", check); }
  check();
  var form = document.getElementById("edit-form");
  form.addEventListener("submit", function (event) {
    if (editor) { editor.save(); }
    if (!check()) { event.preventDefault(); }
  });
  var add = document.getElementById("add-header");
  if (add) {
    add.addEventListener("click", function () {
      var rows = document.getElementById("edit-headers");
      var row = rows.querySelector("tr.header-row").cloneNode(true);
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      rows.appendChild(row);
    });
  }
}());
