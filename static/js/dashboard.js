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
  //: The socket is retried at most this long after it was lost, so a page is live
  //: again within a few seconds of the server's return (htmx's default grows to 64 s).
  var RETRY_CAP_MS = 2000;
  //: Close codes after which htmx's ws extension retries by itself.
  var RETRIED_CODES = [1006, 1011, 1012, 1013];

  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retries) {
      var delay = Math.min(RETRY_CAP_MS, 250 * Math.pow(2, retries));
      return delay / 2 + Math.random() * delay / 2;
    };
  }

  setInterval(function () {
    if (!live && window.htmx && document.getElementById("live-status")) {
      htmx.trigger(document.body, "dashboard:poll");
    }
  }, POLL_MS);

  // --- Times (dashboard/templatetags/dashboard_time.py): the browser's zone, shown.
  var FIELDS = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" };
  function localTime(at, kind) {
    var part = {};
    new Intl.DateTimeFormat(undefined, FIELDS).formatToParts(at).forEach(function (p) { part[p.type] = p.value; });
    var clock = part.hour + ":" + part.minute + (kind === "minute" ? "" : ":" + part.second);
    var day = kind === "datetime" ? part.year + "-" + part.month + "-" + part.day + " " : "";
    return day + clock + " " + part.timeZoneName;
  }
  function localise(root) {
    if (!root || !root.querySelectorAll) { return; }
    root.querySelectorAll("time[data-when]").forEach(function (element) {
      var at = new Date(element.getAttribute("datetime"));
      if (isNaN(at.getTime()) || element.dataset.local) { return; }
      element.dataset.local = "yes";
      var kind = element.dataset.when;
      // An age stays as the server counted it; its instant goes in the tooltip.
      if (kind === "age") { element.title = localTime(at, "datetime") + " (" + element.title + ")"; }
      else { element.textContent = localTime(at, kind); }
    });
    root.querySelectorAll("rect[data-minute] > title").forEach(function (title) {
      var at = new Date(title.parentNode.getAttribute("data-minute"));
      var text = title.textContent;
      var rest = text.indexOf(" UTC");
      if (!isNaN(at.getTime()) && rest >= 0) { title.textContent = localTime(at, "minute") + text.slice(rest + 4); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  if (window.htmx) { htmx.onLoad(localise); }

  function show(text, heard) {
    var state = document.getElementById("live-state");
    if (state) { state.textContent = text; state.dataset.live = live ? "yes" : "no"; }
    var time = document.getElementById("live-heard");
    if (time && heard) {
      time.textContent = localTime(heard, "time");
      time.dateTime = heard.toISOString();
      time.title = heard.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    }
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

  // --- The socket. A close the server chose (a sign-out ends the session's sockets,
  // a lost permission) is not retried by htmx; one it did not (the server went away)
  // is. Either way, ask the server what the page's user may do now: signed out, to
  // the sign-in page (htmx_auth answers an htmx request with HX-Redirect); refused,
  // say so and stop; reachable, open the socket again at once.
  var socket = null;
  var ended = false;
  function endLive(text) {
    ended = true;
    live = false;
    show(text);
    // htmx's ws extension stops retrying once the socket's element left the page.
    var status = document.getElementById("live-status");
    if (status) {
      var copy = status.cloneNode(true);
      copy.removeAttribute("ws-connect");
      copy.removeAttribute("hx-ext");
      status.replaceWith(copy);
    }
  }
  function probe(retry) {
    var page = window.location.pathname + window.location.search;
    fetch(page, { headers: { "HX-Request": "true", "HX-Current-URL": window.location.href }, cache: "no-store", credentials: "same-origin" })
      .then(function (answer) {
        var signIn = answer.headers.get("HX-Redirect");
        if (signIn) { endLive("signed out"); window.location.assign(signIn); }
        else if (answer.status === 403) { endLive("closed: you may no longer see this page"); }
        else if (retry && socket && !ended) { socket.reconnect(); }
      })
      .catch(function () {
        // Unreachable: htmx's own retry (or the next probe) finds the server back.
        if (retry && socket && !ended) { setTimeout(function () { probe(true); }, RETRY_CAP_MS); }
      });
  }
  document.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    live = true;
    show("live", new Date());
    htmx.trigger(document.body, "dashboard:reconnected");
  });
  document.addEventListener("htmx:wsClose", function (event) {
    if (ended) { return; }
    socket = event.detail.socketWrapper || socket;
    var wasLive = live;
    live = false;
    show("offline, reconnecting (polling meanwhile)");
    var code = event.detail.event && event.detail.event.code;
    var retried = RETRIED_CODES.indexOf(code) >= 0;
    // One probe per loss, not one per failed retry while the server is down.
    if (wasLive || !retried) { probe(!retried); }
  });
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

  // --- A button or form whose request failed says so beside itself, and stays usable.
  // Requests the page makes by itself (polls, re-reads) are not the user's: the live
  // indicator speaks for those.
  function byUser(event) {
    var trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    return Boolean(trigger && trigger.isTrusted);
  }
  function notDone(control, text) {
    var note = control.nextElementSibling;
    if (!note || !note.classList.contains("not-done")) {
      note = document.createElement("p");
      note.className = "not-done row-error";
      note.setAttribute("role", "alert");
      control.insertAdjacentElement("afterend", note);
    }
    note.textContent = text;
  }
  document.addEventListener("htmx:sendError", function (event) {
    if (byUser(event)) { notDone(event.detail.elt, "Not done: the server could not be reached. Try again when the page says live."); }
  });
  // htmx does not swap error answers (a 403, a 500): say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var text = "The server refused or failed (" + xhr.status + " " + xhr.statusText + ").";
    if (byUser(event)) { notDone(event.detail.elt, "Not done: " + text); return; }
    var box = document.getElementById("page-error");
    if (box) { box.hidden = false; box.textContent = text; }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var note = event.detail.successful && event.detail.elt && event.detail.elt.nextElementSibling;
    if (note && note.classList.contains("not-done")) { note.remove(); }
  });

  // --- Focus after a swap: the control that had it, or its replacement. A swap
  // (a button's answer, a row or card sent over the socket) replaces the focused
  // element; the browser then puts focus on the body, where the next Enter does
  // nothing. Found again by id; else by its text within the element around it that
  // has an id (a row, a card); else that element's first control; else that element.
  var focused = null;
  document.addEventListener("focusin", function (event) {
    var element = event.target;
    if (!element || element === document.body) { return; }
    var scope = element.parentElement && element.parentElement.closest("[id]");
    focused = { element: element, id: element.id, scope: scope && scope.id,
      tag: element.tagName, text: element.textContent.trim() };
  });
  function restoreFocus() {
    var active = document.activeElement;
    if (!focused || document.contains(focused.element) || (active && active !== document.body)) { return; }
    var target = focused.id && document.getElementById(focused.id);
    var scope = focused.scope && document.getElementById(focused.scope);
    if (!target && scope) {
      target = Array.from(scope.querySelectorAll(focused.tag)).find(function (element) {
        return element.textContent.trim() === focused.text;
      }) || scope.querySelector("a[href], button:not([disabled]), input:not([type=hidden]), select, textarea");
      if (!target) { target = scope; scope.setAttribute("tabindex", "-1"); }
    }
    if (target) { target.focus({ preventScroll: true }); }
  }
  document.addEventListener("htmx:afterSettle", restoreFocus);
  document.addEventListener("htmx:oobAfterSwap", function () { setTimeout(restoreFocus, 0); });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    var source = button && document.querySelector(button.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () { button.textContent = "Copied"; });
    }
  });
})();
