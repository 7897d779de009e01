/**
 * What to check about a server certificate the TLS handshake refused with `code`, as words to
 * append to the code ("; ..."), or "" when the code says it all (expired, another host's name).
 * An issuer this process does not know is most often a private CA; for a certificate that came
 * alone (UNABLE_TO_VERIFY_LEAF_SIGNATURE), also a server that sends no chain, its CA trusted.
 */
export function certRefusalHint(code: string, server: string): string {
  if (!code.startsWith("UNABLE_TO_") && !code.includes("SELF_SIGNED")) return "";
  const chain = code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE" ? ` does ${server} send its chain (the intermediate certificates after its own)? Else` : "";
  return `;${chain} a private CA's certificate goes in NODE_EXTRA_CA_CERTS`;
}
