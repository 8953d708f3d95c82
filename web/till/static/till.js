/* The counter till's script (no inline script: the page's CSP allows only files like this one).
 *
 * The cart lives here, priced from the price list the page carries as a JSON data island, so that a sale can
 * be taken with the network down. Every sale goes to the JSON API (POST .../counter-sales) with a bearer
 * token from POST /till/token (CSRF-checked, 15 minutes, fetched again before it runs out) and with an
 * Idempotency-Key made once, when the sale is made.
 *
 * Online, a sale is sent at once (no till timestamp: it happens now); the server's answer shows at once, and a
 * refusal (stock gone, cash short) leaves the cart for the clerk to fix. Offline, or while older sales still
 * wait, the sale goes into a queue in localStorage with its shift, the unit prices shown and its till
 * timestamp (`client_created_at`), as the API's offline sale requires. A sale whose request left but got no
 * clear answer (the network dropped, it timed out, the server failed) is queued exactly as it was sent, since
 * the server may have taken it: the same key and the same body on every resend, so it is taken once. The queue is
 * sent in order when the network is back, retried with backoff. Such a live sale refused on a resend (the shift
 * closed, a price changed meanwhile) was not taken under its key (the server keeps no refusal) and, as a live
 * sale, was recorded nowhere: it is sent again at once as the offline sale it now is, with its till timestamp and
 * a key of its own derived from the first, so the server takes it (a late entry) or records it as a conflict.
 * A sale the server refuses is moved to the conflicts list the clerk sees, never dropped: those the server
 * recorded (`conflict_id`) are for the manager's sale conflicts page; the others are said to be recorded nowhere.
 */
(function () {
  "use strict";

  /* A receipt just counted as printed (POST …/print) opens the print dialog by itself. */
  if (document.querySelector("[data-print-now]")) { window.addEventListener("load", function () { window.print(); }); }

  var root = document.getElementById("till-root");
  if (!root) { return; }

  var STORE = root.dataset.store;
  var KEYS = { queue: "till:" + STORE + ":queue", conflicts: "till:" + STORE + ":conflicts",
               sent: "till:" + STORE + ":sent" };
  var SENT_KEPT = 20;
  var MAX_BACKOFF_MS = 60000;
  var TOKEN_MARGIN_MS = 60000;
  var REQUEST_TIMEOUT_MS = 20000;
  var MAX_QUANTITY = Number(root.dataset.maxQuantity);  // units in one line: the API's bound (shop/fields.py)
  var QUANTITY_PROBLEM = "数量必须是 1 到 " + MAX_QUANTITY.toLocaleString("en-US") + " 之间的整数（0 为删除）。";
  var LARGEST_NOTE_FEN = 10000;  // ¥100: more change than that means a note was not needed (shop/fields.py)
  var REASONS = JSON.parse(root.dataset.reasons);  // one list with the conflicts page (web/till/service.py)

  /* Why a sale was refused, in Chinese: the API's message is English, so a code without a reason here is named. */
  function reason(code) { return REASONS[code] || "服务器拒绝了这笔销售（" + code + "）"; }
  var csrfToken = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];

  /* --- storage and formatting ------------------------------------------------------------------------ */

  function load(key) {
    try { return JSON.parse(localStorage.getItem(key)) || []; } catch (e) { return []; }
  }

  function save(key, items) { localStorage.setItem(key, JSON.stringify(items)); }

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "";
    var abs = Math.abs(fen);
    return sign + "¥" + Math.floor(abs / 100).toLocaleString("en-US") + "." + String(abs % 100).padStart(2, "0");
  }

  /* A number as typed, read by the server's one rule (web/numbers.py, shop.fields.normalise_number): decimal digits
     of any script or width as ASCII digits (Unicode keeps each script's 0 to 9 in a run of ten), never another
     number sign NFKC would fold to a digit (², ①: kept, so refused), the rest NFKC, invisible characters dropped,
     trimmed; at most MAX_TYPED characters. */
  var MAX_TYPED = 64;
  var INVISIBLE = /[\p{Cf}\u115f\u1160\u3164\uffa0\u2800]/gu;

  function digitValue(ch) {
    var code = ch.codePointAt(0), before = 0;
    while (/\p{Nd}/u.test(String.fromCodePoint(code - before - 1))) { before += 1; }
    return String(before % 10);
  }

  function typed(text) {
    if (text.length > MAX_TYPED) { return null; }
    return Array.from(text.replace(INVISIBLE, ""), function (ch) {
      if (/\p{Nd}/u.test(ch)) { return digitValue(ch); }
      return /\p{N}/u.test(ch) ? ch : ch.normalize("NFKC");
    }).join("").trim();
  }

  /* A code (SKU or trace code) as typed, read by the server's one rule for identifiers (shop.fields
     normalise_identifier): full-width forms folded, decimal digits of any script as ASCII digits, dashes and minus
     signs as `-` (not the wave dashes, which read as a tilde), invisible characters dropped, trimmed, upper case. */
  var DASH = /[\p{Pd}\u2212\u2796\u02d7\u2043]/u;
  var WAVE_DASH = /[\u301c\u3030]/;
  var WIDTH_FORM = /[\uff00-\uffef\u3000]/;

  function codeTyped(text) {
    return Array.from(text.normalize("NFC"), function (ch) {
      var folded = WIDTH_FORM.test(ch) ? ch.normalize("NFKC") : ch;
      if (/\p{Nd}/u.test(folded)) { return digitValue(folded); }
      return DASH.test(folded) && !WAVE_DASH.test(folded) ? "-" : folded;
    }).join("").replace(INVISIBLE, "").trim().toUpperCase();
  }

  /* An amount typed in yuan as fen (`120`, `120.5`, `1,120.50`, `¥200`, `200元`; a comma only groups thousands, two
     decimals at most), or null. */
  function fenFromYuan(text) {
    var value = typed(text);
    if (value === null) { return null; }
    value = value.replace(/^¥/, "").replace(/元$/, "").trim();
    var match = /^([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.([0-9]{0,2}))?$/.exec(value);
    var whole = match ? match[1].replace(/,/g, "").replace(/^0+(?=.)/, "") : "";
    return match && whole.length <= 10 ? Number(whole) * 100 + Number((match[2] || "0").padEnd(2, "0")) : null;
  }

  /* Whole units typed (`３` is 3), 0 to take the line off; null if not a whole number up to the API's bound
     (`1e3`, `1.5`, `-1`). */
  function unitsFrom(text) {
    var digits = typed(text);
    return /^[0-9]{1,16}$/.test(digits) && Number(digits) <= MAX_QUANTITY ? Number(digits) : null;
  }

  /* A moment as every till page and receipt gives it (web/filters.py local_time): Asia/Shanghai wall-clock time to
     the minute, `2026-11-30 15:56`, whatever time zone the till's computer keeps. */
  var CHINA_TIME = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
                                                      day: "2-digit", hour: "2-digit", minute: "2-digit",
                                                      hourCycle: "h23" });

  function localTime(iso) {
    var parts = {};
    CHINA_TIME.formatToParts(new Date(iso)).forEach(function (part) { parts[part.type] = part.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = text; }
    if (className) { node.className = className; }
    return node;
  }

  function receiptUrl(orderId) { return root.dataset.receiptUrl.replace(/0$/, String(orderId)); }

  /* --- the API --------------------------------------------------------------------------------------- */

  /* A sale to send again later; `uncertain` when its request left and no answer came (the server may have it). */
  function Retry(reason, uncertain) { this.reason = reason; this.uncertain = Boolean(uncertain); }

  /* The clerk's sign-in has ended (signed out, expired, deactivated): not a network failure, nothing was sent. */
  function SignedOut() { this.reason = "signed out"; }

  var token = null;
  var signedOut = false;

  /* A request that has had no answer for a while is given up (and, for a sale, sent again later). */
  function timeout() {
    return typeof AbortSignal.timeout === "function" ? AbortSignal.timeout(REQUEST_TIMEOUT_MS) : undefined;
  }

  function bearer() {
    if (token && token.expires - Date.now() > TOKEN_MARGIN_MS) { return Promise.resolve(token.value); }
    return fetch(root.dataset.tokenUrl, {
      method: "POST", credentials: "same-origin", signal: timeout(), redirect: "manual",
      headers: { "X-CSRFToken": csrfToken, "Accept": "application/json" }
    }).then(function (response) {
      var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
      // the page session has ended: its CSRF token is refused (400), or the request is sent to the sign-in page
      signedOut = response.status === 400 || response.type === "opaqueredirect";
      if (signedOut) { throw new SignedOut(); }
      if (!response.ok || !json) { throw new Retry("token " + response.status); }
      return response.json();
    }).then(function (body) {
      token = { value: body.access_token, expires: Date.parse(body.expires_at) };
      return token.value;
    });
  }

  /* Send one sale: resolves {order} when taken, {refused} when the server will not take it; rejects with
     Retry when it should be sent again later (no answer, expired token, server busy or failing). */
  function post(sale) {
    return bearer().catch(function (error) {
      throw error instanceof Retry || error instanceof SignedOut ? error : new Retry("token");
    }).then(function (access) {
      return fetch(root.dataset.salesUrl, {
        method: "POST", credentials: "omit", body: sale.payload, signal: timeout(),
        headers: { "Authorization": "Bearer " + access, "Content-Type": "application/json",
                   "Accept": "application/json", "Idempotency-Key": sale.key }
      }).catch(function () { throw new Retry("network", true); });
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (response.status === 201) { return { order: body }; }
        if (response.status === 401) { token = null; signedOut = true; throw new SignedOut(); }
        var error = body.error || {};
        if (response.status >= 500) { throw new Retry(String(response.status), true); }  // taken before it failed?
        if (response.status === 429 || error.code === "idempotency_key_in_progress") {
          throw new Retry(String(response.status));
        }
        return { refused: { status: response.status, code: error.code || "error",
                            conflict_id: (error.details || {}).conflict_id || null } };
      });
    });
  }

  /* --- the queue ------------------------------------------------------------------------------------- */

  function enqueue(sale) {
    var queue = load(KEYS.queue);
    queue.push(sale);
    save(KEYS.queue, queue);
  }

  function settle(sale, result) {
    save(KEYS.queue, load(KEYS.queue).filter(function (item) { return item.key !== sale.key; }));
    if (result.order) {
      var sent = load(KEYS.sent);
      sent.unshift({ key: sale.key, order_id: result.order.id, total_fen: result.order.total_fen,
                     made_at: sale.made_at });
      save(KEYS.sent, sent.slice(0, SENT_KEPT));
    } else {
      var conflicts = load(KEYS.conflicts);
      conflicts.push({ key: sale.key, made_at: sale.made_at, total_fen: sale.total_fen, summary: sale.summary,
                       code: result.refused.code, conflict_id: result.refused.conflict_id });
      save(KEYS.conflicts, conflicts);
    }
  }

  /* A sale sent live (no till timestamp), whose answer was lost. */
  function sentLive(sale) { return JSON.parse(sale.payload).client_created_at === undefined; }

  /* The live sale refused on a resend, queued again in its place as an offline sale: made at its till time, under a
     new key derived from the first (the server took nothing under that one), to be sent at once. */
  function asOffline(sale) {
    var body = JSON.parse(sale.payload);
    body.client_created_at = sale.made_at;
    save(KEYS.queue, load(KEYS.queue).map(function (item) {
      if (item.key !== sale.key) { return item; }
      return Object.assign({}, item, { key: sale.key + "-offline", payload: JSON.stringify(body), attempts: 0,
                                       next_at: 0 });
    }));
  }

  function backOff(sale) {
    save(KEYS.queue, load(KEYS.queue).map(function (item) {
      if (item.key !== sale.key) { return item; }
      item.attempts = (item.attempts || 0) + 1;
      item.next_at = Date.now() + Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, item.attempts));
      return item;
    }));
  }

  var flushing = false;

  /* Send the waiting sales, oldest first, until one cannot be sent now (it then waits for its backoff). */
  function flush() {
    if (flushing || !navigator.onLine) { return; }
    var sale = load(KEYS.queue)[0];
    if (!sale || (sale.next_at || 0) > Date.now()) { return; }
    flushing = true;
    post(sale).then(function (result) {
      if (result.refused && !result.refused.conflict_id && sentLive(sale)) { asOffline(sale); } else {
        settle(sale, result);
      }
      flushing = false;
      render();
      flush();
    }, function () {
      backOff(sale);
      flushing = false;
      render();
    });
  }

  /* --- what the clerk sees on every till page ------------------------------------------------------- */

  var netBadge = document.getElementById("till-net");
  var queueBadge = document.getElementById("till-queue");
  var conflictBox = document.getElementById("till-conflicts");
  var conflictList = document.getElementById("till-conflict-list");
  var sentList = document.getElementById("sent-list");
  var closeWarning = document.getElementById("close-queue-warning");
  var signInLink = document.getElementById("till-signin");

  function dismiss(key) {
    save(KEYS.conflicts, load(KEYS.conflicts).filter(function (item) { return item.key !== key; }));
    render();
  }

  /* Each refused sale says whether the server recorded it: a recorded one links to its sale conflict (resolved on
     that page; the till only stops showing it), one recorded nowhere asks the clerk to deal with it by hand. */
  function renderConflicts() {
    var conflicts = load(KEYS.conflicts);
    conflictBox.hidden = conflicts.length === 0;
    conflictList.replaceChildren.apply(conflictList, conflicts.map(function (item) {
      var li = el("li");
      var when = localTime(item.made_at);
      li.appendChild(el("strong", "被拒绝：" + reason(item.code)));
      li.appendChild(el("span", " · " + when + " · " + yuan(item.total_fen) + " · " + item.summary + " · "));
      var button;
      if (item.conflict_id) {
        li.appendChild(el("span", "已记录给店长（冲突 " + item.conflict_id + "）"));
        var link = el("a", "去处理");
        link.href = root.dataset.conflictsUrl + "#conflict-" + item.conflict_id;
        li.append(" ", link);
        button = el("button", "不再显示", "link");
        button.setAttribute("aria-label", "不再显示：" + when + " 的销售（只在本机隐藏，服务器上的记录保留）");
      } else {
        li.appendChild(el("strong", "服务器未记录此销售，请人工处理并告知店长", "error"));
        button = el("button", "已人工处理并告知店长", "link");
        button.setAttribute("aria-label", "已人工处理并告知店长：" + when + " 的销售");
      }
      button.type = "button";
      button.addEventListener("click", function () { dismiss(item.key); });
      li.append(" ", button);
      return li;
    }));
  }

  function renderSent() {
    if (!sentList) { return; }
    var sent = load(KEYS.sent);
    if (sent.length === 0) { sentList.replaceChildren(el("li", "暂无。", "muted")); return; }
    sentList.replaceChildren.apply(sentList, sent.map(function (item) {
      var li = el("li");
      var link = el("a", "小票 " + item.order_id);
      link.href = receiptUrl(item.order_id);
      li.appendChild(link);
      li.appendChild(document.createTextNode(" · " + yuan(item.total_fen) + " · 售于 " + localTime(item.made_at)));
      return li;
    }));
  }

  function render() {
    var online = navigator.onLine;
    var waiting = load(KEYS.queue).length;
    netBadge.textContent = online ? "在线" : "离线";
    netBadge.classList.toggle("offline", !online);
    queueBadge.textContent = waiting + " 笔待发送";
    queueBadge.classList.toggle("waiting", waiting > 0);
    signInLink.hidden = !signedOut;
    renderConflicts();
    renderSent();
    if (closeWarning) {
      closeWarning.hidden = waiting === 0;
      closeWarning.textContent = "还有 " + waiting + " 笔离线销售待发送，请恢复网络发送后再交班。";
    }
  }

  window.addEventListener("online", function () {
    save(KEYS.queue, load(KEYS.queue).map(function (item) { item.next_at = 0; return item; }));
    render();
    flush();
  });

  /* While signed out, ask now and then whether the clerk has signed in again (in another tab): the new sign-in's
     CSRF token replaces this page's, which the new session no longer takes. */
  function checkSignIn() {
    if (!signedOut || !navigator.onLine) { return; }
    fetch(root.dataset.sessionUrl, {
      credentials: "same-origin", signal: timeout(), redirect: "manual", headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new SignedOut(); }
      return response.json();
    }).then(function (body) {
      csrfToken = body.csrf_token;
      document.body.setAttribute("hx-headers", JSON.stringify({ "X-CSRFToken": csrfToken }));
      return bearer();
    }).then(function () { render(); flush(); }, render);
  }

  window.addEventListener("offline", render);
  window.addEventListener("storage", render);
  window.addEventListener("focus", checkSignIn);
  setInterval(function () { checkSignIn(); flush(); }, 2000);
  render();
  flush();

  /* --- the sale screen ------------------------------------------------------------------------------- */

  var island = document.getElementById("till-data");
  if (!island) { return; }
  var till = JSON.parse(island.textContent);
  var bySku = new Map();
  var byTrace = new Map();

  function usePrices(products) {
    bySku = new Map();
    byTrace = new Map();
    products.forEach(function (product) {
      bySku.set(product.sku, product);
      product.trace_codes.forEach(function (code) { byTrace.set(code, product); });
    });
  }
  usePrices(till.products);

  var cart = [];
  var scanForm = document.getElementById("scan-form");
  var scanInput = document.getElementById("scan");
  var scanError = document.getElementById("scan-error");
  var cartError = document.getElementById("cart-error");
  var cartBody = document.getElementById("cart-lines");
  var cartEmpty = document.getElementById("cart-empty");
  var totalOut = document.getElementById("total");
  var payForm = document.getElementById("pay-form");
  var cashFields = document.getElementById("cash-fields");
  var tenderedInput = document.getElementById("tendered");
  var changeOut = document.getElementById("change");
  var payError = document.getElementById("pay-error");
  var payButton = document.getElementById("pay");
  var lastSale = document.getElementById("last-sale");

  function total() {
    return cart.reduce(function (sum, line) { return sum + line.quantity * line.product.price_fen; }, 0);
  }

  function method() { return payForm.elements.method.value; }

  /* A lot's QR label carries its trace page's address (`https://<public host>[/<prefix>]/t/<trace code>`,
     catalog/trace.py): scanned, it is that trace code; anything else is the code or SKU as typed (`codeTyped`). */
  var TRACE_PAGE = /^https?:\/\/[^\/\s?#]+(?:\/[^\s?#]*)?\/t\/([^\/\s?#]+)\/?(?:[?#]\S*)?$/i;

  function scannedCode(raw) {
    var text = codeTyped(raw);
    var label = TRACE_PAGE.exec(text);
    return label ? label[1] : text;
  }

  function addCode(raw) {
    var code = scannedCode(raw);
    if (!code) { return; }
    var traced = byTrace.get(code);
    var product = traced || bySku.get(code);
    if (!product) {
      scanError.textContent = "未找到商品：" + code + "（本店无货或编码有误）";
      return;
    }
    scanError.textContent = "";
    var kind = traced ? "trace_code" : "sku";
    var line = cart.find(function (item) { return item.kind === kind && item.code === code; });
    if (line) { line.quantity += 1; } else { cart.push({ kind: kind, code: code, product: product, quantity: 1 }); }
    renderCart();
  }

  /* A line's new quantity: 0 takes it off; one beyond the bound is refused (said, and the line left as it was). */
  function setQuantity(line, quantity) {
    cartError.textContent = quantity > MAX_QUANTITY ? QUANTITY_PROBLEM : "";
    if (quantity < 1) {
      cart.splice(cart.indexOf(line), 1);
    } else if (quantity <= MAX_QUANTITY) {
      line.quantity = quantity;
    }
    renderCart();
  }

  function quantityBox(line) {
    var box = el("div", null, "qty-box");
    var less = el("button", "−");
    less.type = "button";
    less.setAttribute("aria-label", "减少 " + line.product.name);
    less.addEventListener("click", function () { setQuantity(line, line.quantity - 1); });
    var input = el("input");  // text, not number: Chromium would drop full-width digits and read 1e3 as a number
    input.inputMode = "numeric";
    input.autocomplete = "off";
    input.maxLength = 16;
    input.value = String(line.quantity);
    input.setAttribute("aria-label", line.product.name + " 数量");
    input.setAttribute("aria-describedby", "cart-error");
    input.addEventListener("change", function () {
      var value = unitsFrom(input.value);
      if (value === null) {  // the box shows again what the line sells, and why the typed text was not taken
        renderCart();
        cartError.textContent = QUANTITY_PROBLEM;
      } else {
        setQuantity(line, value);
      }
    });
    var more = el("button", "+");
    more.type = "button";
    more.setAttribute("aria-label", "增加 " + line.product.name);
    more.addEventListener("click", function () { setQuantity(line, line.quantity + 1); });
    box.append(less, input, more);
    return box;
  }

  function renderCart() {
    cartBody.replaceChildren.apply(cartBody, cart.map(function (line) {
      var row = el("tr");
      var name = el("td");
      name.appendChild(el("div", line.product.name));
      name.appendChild(el("div", (line.kind === "trace_code" ? "追溯码 " : "SKU ") + line.code, "code"));
      var inCart = cart.filter(function (item) { return item.product === line.product; })
        .reduce(function (sum, item) { return sum + item.quantity; }, 0);
      if (inCart > line.product.available) { name.appendChild(el("div", "库存可能不足", "warn")); }
      var quantity = el("td");
      quantity.appendChild(quantityBox(line));
      var remove = el("button", "×", "remove");
      remove.type = "button";
      remove.setAttribute("aria-label", "移除 " + line.product.name);
      remove.addEventListener("click", function () { setQuantity(line, 0); scanInput.focus(); });
      var actions = el("td");
      actions.appendChild(remove);
      row.append(name, el("td", yuan(line.product.price_fen), "num"), quantity,
                 el("td", yuan(line.quantity * line.product.price_fen), "num"), actions);
      return row;
    }));
    cartEmpty.hidden = cart.length > 0;
    totalOut.textContent = yuan(total());
    renderChange();
  }

  function renderChange() {
    cashFields.hidden = method() !== "cash";
    var tendered = fenFromYuan(tenderedInput.value);
    if (tendered === null) { changeOut.textContent = "—"; return; }
    changeOut.textContent = tendered >= total() ? yuan(tendered - total()) : "不足 " + yuan(total() - tendered);
  }

  function summary() {
    return cart.map(function (line) { return line.product.name + " × " + line.quantity; }).join("，");
  }

  function showTaken(orderId, changeFen, note) {
    lastSale.replaceChildren();
    lastSale.appendChild(el("p", note, "ok"));
    if (changeFen !== null) { lastSale.appendChild(el("p", "找零 " + yuan(changeFen), "change-due")); }
    if (orderId) {
      var link = el("a", "打印小票（单号 " + orderId + "）", "button");
      link.href = receiptUrl(orderId);
      lastSale.appendChild(link);
    }
  }

  function resetSale() {
    cart = [];
    tenderedInput.value = "";
    scanError.textContent = "";
    cartError.textContent = "";
    payError.textContent = "";
    renderCart();
    scanInput.focus();
  }

  /* Prices changed since the page was loaded: fetch today's price list and price the cart afresh (sales already
     queued offline keep the prices they were made at). */
  function reprice() {
    return fetch(root.dataset.pricesUrl, {
      credentials: "same-origin", signal: timeout(), headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Retry("prices " + response.status); }
      return response.json();
    }).then(function (body) {
      usePrices(body.products);
      var gone = [];
      cart = cart.filter(function (line) {
        var product = bySku.get(line.product.sku);
        if (!product) { gone.push(line.product.name); return false; }
        line.product = product;
        return true;
      });
      renderCart();
      payError.textContent = "售价已变动，已按最新价格重新计价，合计 " + yuan(total()) + "，请与顾客确认后再收款。" +
        (gone.length ? "已下架或无货：" + gone.join("、") + "。" : "");
    }, function () {
      payError.textContent = "售价已变动，未能取得最新价格，请刷新页面。";
    });
  }

  function checkout() {
    var sum = total();
    if (cart.length === 0) { payError.textContent = "请先扫码添加商品。"; scanInput.focus(); return; }
    var payment = { method: method() };
    if (payment.method === "cash") {
      payment.tendered_fen = fenFromYuan(tenderedInput.value);
      var typedCash = tenderedInput.value.trim();
      if (payment.tendered_fen === null || payment.tendered_fen < sum) {
        payError.textContent = typedCash === "" ? "请输入实收现金，不少于合计 " + yuan(sum) + "。"
          : payment.tendered_fen === null ? "实收现金「" + typedCash + "」不是有效的金额：请按元输入，最多两位小数，例如 100 或 100.50。"
          : "实收现金不足：不少于合计 " + yuan(sum) + "。";
        tenderedInput.focus();
        return;
      }
      if (payment.tendered_fen - sum >= LARGEST_NOTE_FEN) {
        payError.textContent = "找零不能达到 ¥100：多收了不需要的纸币，实收最多 " + yuan(sum + LARGEST_NOTE_FEN - 1) + "。";
        tenderedInput.focus();
        return;
      }
    }
    var madeAt = new Date().toISOString();
    var online = navigator.onLine && load(KEYS.queue).length === 0;
    var body = {
      lines: cart.map(function (line) {
        var item = { quantity: line.quantity, unit_price_fen: line.product.price_fen };
        item[line.kind] = line.code;
        return item;
      }),
      payment: payment, shift_id: till.shift_id
    };
    if (!online) { body.client_created_at = madeAt; }
    var change = payment.method === "cash" ? payment.tendered_fen - sum : null;
    var sale = { key: newKey(), made_at: madeAt, total_fen: sum, summary: summary(), payload: JSON.stringify(body),
                 attempts: 0, next_at: 0 };
    if (!online) {
      enqueue(sale);
      showTaken(null, change, "已离线记录，联网后自动发送。");
      resetSale();
      render();
      return;
    }
    payButton.disabled = true;
    post(sale).then(function (result) {
      if (result.order) {
        showTaken(result.order.id, change === null ? null : result.order.change_fen, "收款成功。");
        resetSale();
      } else if (result.refused.code === "price_mismatch") {
        return reprice();
      } else {
        payError.textContent = "未能收款：" + reason(result.refused.code);
      }
    }, function (retry) {
      if (retry instanceof SignedOut) {  // nothing was sent, and nothing is queued: the clerk signs in again first
        payError.textContent = "登录已失效，销售未发送，请重新登录。";
        render();
        return;
      }
      if (!retry.uncertain) {  // never sent: it waits as an offline sale, with its own time
        body.client_created_at = madeAt;
        sale.payload = JSON.stringify(body);
      }
      enqueue(sale);
      showTaken(null, change, "网络中断，销售已记录，联网后自动发送。");
      resetSale();
      render();
    }).then(function () { payButton.disabled = false; });
  }

  scanForm.addEventListener("submit", function (event) {
    event.preventDefault();
    addCode(scanInput.value);
    scanInput.value = "";
    scanInput.focus();
  });
  payForm.addEventListener("submit", function (event) { event.preventDefault(); checkout(); });
  payForm.addEventListener("change", renderChange);
  tenderedInput.addEventListener("input", renderChange);
  document.getElementById("clear-cart").addEventListener("click", function () {
    resetSale();
    lastSale.replaceChildren();
  });
  renderCart();
}());
