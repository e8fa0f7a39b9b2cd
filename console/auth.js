// Signing in and the signed-in session. config.json says how: "local" (the local server's users file) or
// "cognito" (the stack's user pool, USER_PASSWORD_AUTH). The token lives in sessionStorage: closing the tab signs out.
// What the token's claims say is read here for display only (which buttons to show); the API enforces every scope.

const SESSION_KEY = "cdp.session";
const BRAND_KEY = "cdp.brand";
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const COGNITO_TARGET = "AWSCognitoIdentityProviderService.InitiateAuth";
export const SCOPES_CLAIM = "custom:cdp_scopes";
export const ORG_SCOPE_CLAIM = "custom:cdp_scope";

let config = null;

export async function loadConfig() {
  const response = await fetch(new URL("config.json", import.meta.url), { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  config = await response.json();
  return config;
}

export function apiBase() {
  return (config && config.api) || "";
}

/** Why a sign-in failed: `kind` is credentials, invalid (with `field`), challenge, unavailable or config. */
export class SignInError extends Error {
  constructor(kind, message, field) {
    super(message || kind);
    this.kind = kind;
    this.field = field || null;
  }
}

/** The request Cognito's InitiateAuth takes for a user name and password (USER_PASSWORD_AUTH). */
export function cognitoRequest(auth, username, password) {
  if (!REGION.test(auth.region || "")) throw new SignInError("config", `not an AWS region: ${auth.region}`);
  if (!auth.client_id) throw new SignInError("config", "config.json names no client_id");
  return {
    url: `https://cognito-idp.${auth.region}.amazonaws.com/`,
    init: {
      method: "POST",
      headers: { "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": COGNITO_TARGET },
      body: JSON.stringify({
        AuthFlow: "USER_PASSWORD_AUTH",
        ClientId: auth.client_id,
        AuthParameters: { USERNAME: username, PASSWORD: password },
      }),
    },
  };
}

/** A Cognito answer as the ID token and its lifetime, or the SignInError it means. */
export function cognitoAnswer(status, body) {
  const result = body && body.AuthenticationResult;
  if (status === 200 && result && result.IdToken) return { id_token: result.IdToken, expires_in: result.ExpiresIn };
  if (status === 200 && body && body.ChallengeName) throw new SignInError("challenge", body.ChallengeName);
  const type = String((body && body.__type) || "").split("#").pop();
  if (type === "NotAuthorizedException" || type === "UserNotFoundException") throw new SignInError("credentials");
  if (type === "InvalidParameterException") throw new SignInError("invalid", body.message, "username");
  throw new SignInError("unavailable", (body && (body.message || body.__type)) || `HTTP ${status}`);
}

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function localSignIn(auth, username, password) {
  let response;
  try {
    response = await fetch(auth.sign_in, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch (error) {
    throw new SignInError("unavailable", error.message);
  }
  const body = await readJson(response);
  if (response.ok && body && body.id_token) return body;
  if (response.status === 401) throw new SignInError("credentials");
  if (response.status === 400) throw new SignInError("invalid", body && body.message, body && body.field);
  throw new SignInError("unavailable", (body && body.message) || `HTTP ${response.status}`);
}

async function cognitoSignIn(auth, username, password) {
  const { url, init } = cognitoRequest(auth, username, password);
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new SignInError("unavailable", error.message);
  }
  return cognitoAnswer(response.status, await readJson(response));
}

/** Sign in with the configured provider; the session is stored and returned. */
export async function signIn(username, password) {
  const auth = (config && config.auth) || {};
  let answer;
  if (auth.kind === "local") answer = await localSignIn(auth, username, password);
  else if (auth.kind === "cognito") answer = await cognitoSignIn(auth, username, password);
  else throw new SignInError("config", `unknown sign-in kind ${auth.kind}`);
  const claims = decodeClaims(answer.id_token);
  const now = Date.now();
  const session = {
    token: answer.id_token,
    username: claims["cognito:username"] || claims.sub || username,
    name: answer.name || claims.name || username,
    locale: answer.locale || claims.locale || null,
    expires_at: claims.exp ? claims.exp * 1000 : now + (answer.expires_in || 3600) * 1000,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  return session;
}

export function signOut() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** The stored session, or null when there is none or it has expired. */
export function currentSession() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    session = null;
  }
  if (!session || !session.token) return null;
  if (session.expires_at && session.expires_at <= Date.now()) {
    signOut();
    return null;
  }
  return session;
}

/** The JWT's payload (no signature check: the API checks it; the console only decides what to show). */
export function decodeClaims(token) {
  try {
    const part = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

export function scopes(session) {
  const claims = decodeClaims(session && session.token);
  return new Set(String(claims[SCOPES_CLAIM] || "").split(/\s+/).filter(Boolean));
}

export function hasScope(session, scope) {
  return scopes(session).has(scope);
}

/** Where in the org the user may look: {brand_id, store_id, ...}; {} means every brand. */
export function orgScope(session) {
  const claims = decodeClaims(session && session.token);
  try {
    const parsed = JSON.parse(claims[ORG_SCOPE_CLAIM] || "{}");
    return parsed && typeof parsed === "object" ? parsed : {};
  } catch {
    return {};
  }
}

/** The brand the console shows: the user's own, else the one they chose (users of every brand choose). */
export function brandOf(session) {
  return orgScope(session).brand_id || localStorage.getItem(BRAND_KEY) || "";
}

export function chooseBrand(brand) {
  if (brand) localStorage.setItem(BRAND_KEY, brand);
  else localStorage.removeItem(BRAND_KEY);
}
