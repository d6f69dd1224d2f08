/* The proof-of-work solver (docs/challenge.md), run as a Web Worker by widget.js only while the
   server asks for a challenge, so the page stays responsive: it finds the whole number n from 0
   to maxnumber for which the hex SHA-256 of salt + n is the challenge, and posts it back
   ({number: n}, or {number: -1} when there is none).
   SHA-256 of one 64-byte block in plain JavaScript, which is all a salt of 32 characters and a
   number need: in Chromium it tried 1.7 to 2.2 million numbers a second where WebCrypto's
   digest, whose every call costs a promise, managed 80,000 to 150,000; and it needs no secure
   context. */
(function () {
  "use strict";

  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);
  var IV = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
  ]);
  var W = new Int32Array(64);
  var H = new Int32Array(8);

  // The salt's part of the block is the same for every number: its words are written once, and
  // while the salt fills the first words the first rounds are the same too (a "midstate").
  var base = new Int32Array(16);
  var mid = new Int32Array(8);
  var midRounds = 0;

  function prepare(salt) {
    var i;
    for (i = 0; i < 16; i++) base[i] = 0;
    for (i = 0; i < salt.length; i++) base[i >> 2] |= salt.charCodeAt(i) << (24 - (i & 3) * 8);
    midRounds = salt.length >> 2; // rounds that read only whole words of salt
    for (i = 0; i < 8; i++) mid[i] = IV[i];
    rounds(base, mid, 0, midRounds);
  }

  function rounds(w, s, from, to) {
    var a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (var i = from; i < to; i++) {
      var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      var t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + w[i]) | 0;
      var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      var t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    s[0] = a; s[1] = b; s[2] = c; s[3] = d; s[4] = e; s[5] = f; s[6] = g; s[7] = h;
  }

  // The hash of salt + digits (under 56 characters in all), as eight 32-bit words in H.
  function sha256(length, digits) {
    var i, n = length + digits.length;
    for (i = 0; i < 16; i++) W[i] = base[i];
    for (i = 0; i < digits.length; i++) {
      var at = length + i;
      W[at >> 2] |= digits.charCodeAt(i) << (24 - (at & 3) * 8);
    }
    W[n >> 2] |= 0x80 << (24 - (n & 3) * 8);
    W[15] = n * 8;
    for (i = 16; i < 64; i++) {
      var x = W[i - 15], y = W[i - 2];
      var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    for (i = 0; i < 8; i++) H[i] = mid[i];
    rounds(W, H, midRounds, 64);
    for (i = 0; i < 8; i++) H[i] = (H[i] + IV[i]) | 0;
  }

  function solve(salt, challenge, maxnumber) {
    if (!/^[0-9a-f]{64}$/.test(challenge) || /[^\x20-\x7e]/.test(salt)) return -1;
    if (salt.length + String(maxnumber).length > 55) return -1;
    var want = new Int32Array(8);
    for (var w = 0; w < 8; w++) want[w] = parseInt(challenge.substr(w * 8, 8), 16) | 0;
    prepare(salt);
    for (var n = 0; n <= maxnumber; n++) {
      sha256(salt.length, String(n));
      if (H[0] !== want[0]) continue;
      for (w = 1; w < 8 && H[w] === want[w]; w++);
      if (w === 8) return n;
    }
    return -1;
  }

  self.onmessage = function (event) {
    var c = event.data || {};
    var n = c.algorithm === "SHA-256" ? solve(String(c.salt), String(c.challenge), +c.maxnumber) : -1;
    self.postMessage({ number: n });
  };
})();
