// Checks, in the buyer's own browser, that this order's ledger transaction is in the
// signed Merkle tree head (RFC 6962 / RFC 9162 §2.1.3.2), using
// WebCrypto only: SHA-256 for the audit path, Ed25519 for the head's signature where
// the browser supports it. Nothing here trusts the page's server beyond the bytes it
// returns: the leaf is recomputed from the transaction hash printed on the page. That
// this head is the one everyone else is shown is what witnesses (python -m ledger.witness)
// and a key pinned outside the shop add: this page alone cannot know it.
(function () {
  'use strict';
  var box = document.querySelector('[data-merkle-verify]');
  if (!box) { return; }
  var button = box.querySelector('button');
  var out = box.querySelector('[data-merkle-result]');
  var msg = function (name) { return box.getAttribute('data-msg-' + name) || name; };

  function hexToBytes(hex) {
    if (typeof hex !== 'string' || !/^([0-9a-f]{2})*$/.test(hex)) { throw new Error('hex'); }
    var bytes = new Uint8Array(hex.length / 2);
    for (var i = 0; i < bytes.length; i++) { bytes[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return bytes;
  }
  function bytesToHex(bytes) {
    return Array.prototype.map.call(new Uint8Array(bytes), function (b) {
      return ('0' + b.toString(16)).slice(-2);
    }).join('');
  }
  function concat(prefix, a, b) {
    var joined = new Uint8Array(1 + a.length + (b ? b.length : 0));
    joined[0] = prefix; joined.set(a, 1); if (b) { joined.set(b, 1 + a.length); }
    return joined;
  }
  function sha256(bytes) {
    return crypto.subtle.digest('SHA-256', bytes).then(function (d) { return new Uint8Array(d); });
  }
  function getJson(url) {
    return fetch(url, {headers: {'Accept': 'application/json'}}).then(function (r) {
      if (!r.ok) { throw new Error(msg('fetch') + ' ' + url + ' (' + r.status + ')'); }
      return r.json();
    });
  }
  // RFC 9162 §2.1.3.2: the root an audit path leads to from leaf `index` of `size`.
  function rootFromPath(index, size, leaf, path) {
    var fn = index, sn = size - 1, r = Promise.resolve(leaf);
    if (index >= size) { return Promise.reject(new Error(msg('bad-path'))); }
    path.forEach(function (hex) {
      var p = hexToBytes(hex);
      if (p.length !== 32) { throw new Error(msg('bad-path')); }
      r = r.then(function (current) {
        if (sn === 0) { throw new Error(msg('bad-path')); }
        var next;
        if ((fn & 1) === 1 || fn === sn) {
          next = sha256(concat(1, p, current));
          if ((fn & 1) === 0) { while ((fn & 1) === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
        } else {
          next = sha256(concat(1, current, p));
        }
        fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
        return next;
      });
    });
    return r.then(function (root) {
      if (sn !== 0) { throw new Error(msg('bad-path')); }
      return root;
    });
  }
  function signedMessage(head) {
    // The signed bytes: {"root_hash","timestamp","tree_size"}, sorted keys, no spaces.
    return new TextEncoder().encode(JSON.stringify({
      root_hash: head.root_hash, timestamp: head.timestamp, tree_size: head.tree_size
    }));
  }
  function checkSignature(head, key) {
    var raw = Uint8Array.from(atob(key.public_key), function (c) { return c.charCodeAt(0); });
    var signature = Uint8Array.from(atob(head.signature), function (c) { return c.charCodeAt(0); });
    return sha256(raw).then(function (id) {
      if (bytesToHex(id) !== head.key_id || key.key_id !== head.key_id) { throw new Error(msg('bad-key')); }
      return crypto.subtle.importKey('raw', raw, {name: 'Ed25519'}, false, ['verify']).then(
        function (cryptoKey) {
          return crypto.subtle.verify({name: 'Ed25519'}, cryptoKey, signature, signedMessage(head))
            .then(function (valid) {
              if (!valid) { throw new Error(msg('bad-signature')); }
              return 'signed';
            });
        },
        // Browsers without Ed25519 in WebCrypto refuse the import: say so, do not fail.
        function (error) {
          if (error && error.name === 'NotSupportedError') { return 'unsupported'; }
          throw new Error(msg('bad-key'));
        });
    });
  }
  function show(ok, text) {
    out.textContent = (ok ? '✓ ' : '✗ ') + text;
    out.className = ok ? 'verified' : 'problem';
    out.setAttribute('data-outcome', ok ? 'ok' : 'failed');
  }
  button.addEventListener('click', function () {
    button.disabled = true;
    out.textContent = msg('working');
    var txHash = box.getAttribute('data-transaction-hash');
    var proof, head, key;
    Promise.all([
      getJson(box.getAttribute('data-proof-url')),
      getJson(box.getAttribute('data-head-url')),
      getJson(box.getAttribute('data-key-url'))
    ]).then(function (answers) {
      proof = answers[0]; head = answers[1]; key = answers[2];
      if (proof.tree_size !== head.tree_size || proof.root_hash !== head.root_hash) {
        throw new Error(msg('bad-head'));
      }
      // Leaf i is transaction i + 1: a proof for another position proves nothing here.
      if (proof.leaf_index !== Number(box.getAttribute('data-transaction-id')) - 1) {
        throw new Error(msg('bad-leaf'));
      }
      return sha256(concat(0, hexToBytes(txHash)));
    }).then(function (leaf) {
      if (bytesToHex(leaf) !== proof.leaf_hash) { throw new Error(msg('bad-leaf')); }
      return rootFromPath(proof.leaf_index, proof.tree_size, leaf, proof.audit_path);
    }).then(function (root) {
      if (bytesToHex(root) !== head.root_hash) { throw new Error(msg('bad-root')); }
      return checkSignature(head, key);
    }).then(function (signature) {
      show(true, msg(signature === 'signed' ? 'ok' : 'ok-unsigned'));
    }).catch(function (error) {
      show(false, (error && error.message) || msg('failed'));
    }).then(function () { button.disabled = false; });
  });
})();
