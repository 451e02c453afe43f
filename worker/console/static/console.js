// The console's only script besides htmx: a list refreshing itself (htmx polling, `data-refresh`)
// holds still while the user is at it: letters ticked in it, a field being typed in, or text
// selected on the page. Served from the console itself (the CSP allows no inline script).
(function () {
  "use strict";
  function busy(list) {
    if (list.querySelector("input:checked")) return true;
    if (typing(document.activeElement)) return true;
    var selected = window.getSelection ? String(window.getSelection()) : "";
    return selected.length > 0;
  }
  function typing(element) {
    if (!element) return false;
    if (element.tagName === "TEXTAREA" || element.tagName === "SELECT") return true;
    return element.tagName === "INPUT" && !/^(checkbox|radio|submit|button|hidden)$/.test(element.type);
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.hasAttribute("data-refresh") && busy(source)) {
      event.preventDefault();
    }
  });
})();
