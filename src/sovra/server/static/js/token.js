// sovra's signed request token (sovra.auth.make_token), made in the browser with WebCrypto.

const enc = new TextEncoder();
// PKCS #8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410), the form WebCrypto imports.
const PKCS8_ED25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03,
  0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

function b64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function hex(digest) {
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A private signing key from a 32-byte seed, as sovra writes key files; not extractable. */
export async function importSeed(seed) {
  if (seed.length !== 32) throw new Error(`a key file holds 32 bytes, this one ${seed.length}`);
  const der = new Uint8Array(48);
  der.set(PKCS8_ED25519);
  der.set(seed, 16);
  return crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
}

/** A token for exactly one request: method, path and body are bound, it lives 60 s. */
export async function makeToken(key, principal, method, path, body) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {  // keys in sorted order: the canonical JSON sovra signs
    bh: await hex(await crypto.subtle.digest("SHA-256", enc.encode(body))),
    exp: now + 60,
    htm: method.toUpperCase(),
    htu: path,
    iat: now,
    nonce: b64url(crypto.getRandomValues(new Uint8Array(16))),
    sub: principal,
  };
  const encoded = b64url(enc.encode(JSON.stringify(claims)));
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, key, enc.encode(`sovra-token/v1.${encoded}`));
  return `v1.${encoded}.${b64url(new Uint8Array(signature))}`;
}
