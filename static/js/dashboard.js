// The live dashboard: say whether the socket is up and when the server was last
// heard from; re-read what the page shows after every (re)connect, since changes
// made while the socket was down were not sent; poll while it is down (a
// "dashboard:poll" event on body every few seconds: an hx-trigger condition would
// need eval, which the Content-Security-Policy forbids); refresh a detail block
// after its action's row changes.
(function () {
  "use strict";
  var live = false;
  var pending = {};
  var newRowsTimer = null;
  var POLL_MS = 5000;

  setInterval(function () {
    if (!live && window.htmx && document.getElementById("live-status")) {
      htmx.trigger(document.body, "dashboard:poll");
    }
  }, POLL_MS);

  function show(text, heard) {
    var state = document.getElementById("live-state");
    if (state) { state.textContent = text; state.dataset.live = live ? "yes" : "no"; }
    var time = document.getElementById("live-heard");
    if (time && heard) { time.textContent = heard.toLocaleTimeString(); time.dateTime = heard.toISOString(); }
  }

  // Rows this page does not show are dropped, rather than logged as htmx errors.
  if (window.htmx) {
    htmx.defineExtension("shown-rows", {
      transformResponse: function (text) {
        var template = document.createElement("template");
        var unknown = false;
        template.innerHTML = text;
        var bulk = document.getElementById("bulk-form");
        Array.from(template.content.children).forEach(function (element) {
          if (!element.id || !document.getElementById(element.id)) { element.remove(); unknown = true; return; }
          // A live row keeps its tick for "Cancel selected"; pages without the bulk form show none.
          element.querySelectorAll("input.select-row").forEach(function (box) {
            var shown = document.querySelector('input.select-row[value="' + box.value + '"]');
            if (!bulk) { box.remove(); } else if (shown && shown.checked) { box.setAttribute("checked", "checked"); }
          });
        });
        // Maybe new actions: the list's first page asks how many ("N new - show").
        if (unknown && !newRowsTimer) {
          newRowsTimer = setTimeout(function () { newRowsTimer = null; htmx.trigger(document.body, "dashboard:new-rows"); }, 500);
        }
        return template.innerHTML;
      }
    });
  }

  document.addEventListener("htmx:wsOpen", function () {
    live = true;
    show("live", new Date());
    htmx.trigger(document.body, "dashboard:reconnected");
  });
  document.addEventListener("htmx:wsClose", function () { live = false; show("reconnecting (polling meanwhile)"); });
  document.addEventListener("htmx:wsAfterMessage", function (event) {
    show("live", new Date());
    // One re-read per action and burst: the read happens after every change it covers.
    String(event.detail.message).replace(/id="action-(\d+)"/g, function (match, pk) {
      if (!pending[pk]) {
        pending[pk] = setTimeout(function () {
          delete pending[pk];
          htmx.trigger(document.body, "dashboard:action-" + pk);
        }, 300);
      }
      return match;
    });
  });
  // Screen readers do not read a live region that was swapped in whole, so one
  // region that stays says what changed: an action's status, a queue paused or resumed.
  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (!region) {
      region = document.createElement("div");
      region.id = "live-announcer";
      region.className = "visually-hidden";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    region.textContent = text;
  }
  function textOf(root, selector) {
    var element = root && root.querySelector(selector);
    return element ? element.textContent.trim() : "";
  }
  // Compare the rows and cards about to come in with those shown, whichever way they come.
  var WATCHED = [
    { selector: 'tr[id^="action-"]', part: ".status", name: "Action ", prefix: 7 },
    { selector: "section.queue-card[id]", part: ".badge", name: "Queue ", prefix: 6 }
  ];
  function announceChanges(root) {
    var said = [];
    WATCHED.forEach(function (kind) {
      var fresh = Array.from(root.querySelectorAll(kind.selector));
      if (root.matches && root.matches(kind.selector)) { fresh.push(root); }
      fresh.forEach(function (element) {
        var shown = document.getElementById(element.id);
        var now = textOf(element, kind.part);
        if (shown && now && now !== textOf(shown, kind.part)) { said.push(kind.name + element.id.slice(kind.prefix) + ": " + now); }
      });
    });
    if (said.length) { announce(said.join("; ")); }
  }
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.fragment) { announceChanges(event.detail.fragment); }
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.shouldSwap || typeof event.detail.serverResponse !== "string") { return; }
    var template = document.createElement("template");
    template.innerHTML = event.detail.serverResponse;
    announceChanges(template.content);
  });

  // htmx does not swap error answers (a 403, a 500): say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("page-error");
    var xhr = event.detail.xhr;
    if (box) { box.hidden = false; box.textContent = "The server refused or failed (" + xhr.status + " " + xhr.statusText + ")."; }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    var source = button && document.querySelector(button.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () { button.textContent = "Copied"; });
    }
  });
})();
