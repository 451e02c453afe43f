// The console's only script besides htmx: a list refreshing itself (htmx polling, `data-refresh`)
// holds still while the user is at it: letters ticked in it, a field being typed in, or text
// selected on the page. A refresh is not sent then, and one sent before the user started is not
// swapped in when it comes back. Served from the console itself (the CSP allows no inline script).
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
  function refreshing(event) {
    var source = event.detail && event.detail.elt;
    return source && source.hasAttribute("data-refresh") ? source : null;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var list = refreshing(event);
    if (list && busy(list)) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var list = refreshing(event);
    if (list && busy(list)) event.detail.shouldSwap = false;
  });
})();
