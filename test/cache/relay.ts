/**
 * A TCP relay in front of a local port that a test can cut and restore: the way to take Redis
 * away from ONE replica while the others keep it.
 *
 *   const relay = await tcpRelay(redis.port);   // connect to 127.0.0.1:relay.port instead
 *   relay.cut();      // every relayed connection is closed; new ones are closed on accept
 *   relay.restore();  // connections are relayed again
 *   relay.truncateResponses(1000);   // each connection's answer is cut after 1000 bytes (head included); undefined: whole
 *   relay.delayResponses(80);        // each chunk of an answer is relayed 80 ms late (in order): a slow link; 0: at once
 *   relay.sent("PING");              // chunks sent to the target so far that contain "PING"
 *   relay.answered(/SUBSCRIBE/);     // chunks of answer relayed to the open client connections so far (with an
 *                                    // argument: to those that never sent a match, the subscriber's left out)
 *   relay.accepted();                // connections accepted so far
 *   relay.connected();               // client connections open now (black-holed ones included)
 *   relay.holdOn(/ARGV/);             // the next chunk a client sends that matches (and every chunk of that
 *                                    // connection after it) is held, not sent on, until relay.release(): a command
 *                                    // Redis gets late, or never (nothing released; the connection closed meanwhile)
 *   relay.holding();                 // whether a connection's chunks are held now
 *   relay.blackhole(/SUBSCRIBE/);    // the open connections that sent a match (all: no argument) are silently
 *                                    // dropped: bytes both ways go nowhere, no FIN, no RST (a lost NAT/conntrack
 *                                    // entry); returns how many. New connections are relayed as before.
 *   relay.close();
 */
import type { Socket } from "bun";

interface Side {
  peer: Socket<Side> | undefined;
  /** Upstream side: bytes relayed to the client so far. */
  relayed: number;
  /** Bytes not yet accepted by this socket (written on drain). */
  out: Uint8Array[];
  /** Bytes for the peer before it exists. */
  early: Uint8Array[];
  /** Client side: what the client sent so far (latin1; blackhole's filter). */
  said: string;
  /** Black-holed (both sides): nothing passes any more, the sockets stay open. */
  dead: { value: boolean };
  /** Client side: chunks held (holdOn) until release(); undefined: relayed at once. */
  held?: Uint8Array[];
  /** Client side: chunks of answer relayed to it so far. */
  answers: number;
}

function send(s: Socket<Side>, data: Uint8Array): void {
  if (s.data.out.length > 0) {
    s.data.out.push(data);
    return;
  }
  const n = s.write(data);
  if (n < data.byteLength) s.data.out.push(data.subarray(Math.max(n, 0)));
}

function flush(s: Socket<Side>): void {
  while (s.data.out.length > 0) {
    const chunk = s.data.out[0]!;
    const n = s.write(chunk);
    if (n < chunk.byteLength) {
      s.data.out[0] = chunk.subarray(Math.max(n, 0));
      return;
    }
    s.data.out.shift();
  }
}

export async function tcpRelay(targetPort: number) {
  let isCut = false;
  let truncateAt: number | undefined;
  let delayMs = 0;
  let accepted = 0;
  const toTarget: string[] = [];
  let holdMatch: RegExp | undefined;
  let holder: Socket<Side> | undefined;
  const open = new Set<Socket<Side>>();
  /** The client sides of `open`. */
  const clients = new Set<Socket<Side>>();
  const server = Bun.listen<Side>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        client.data = { peer: undefined, out: [], early: [], relayed: 0, said: "", dead: { value: false }, answers: 0 };
        accepted++;
        if (isCut) {
          client.end();
          return;
        }
        open.add(client);
        clients.add(client);
        Bun.connect<Side>({
          hostname: "127.0.0.1",
          port: targetPort,
          socket: {
            open(up) {
              up.data = { peer: client, out: [], early: [], relayed: 0, said: "", dead: client.data.dead, answers: 0 };
              client.data.peer = up;
              open.add(up);
              for (const d of client.data.early) send(up, d);
              client.data.early = [];
            },
            data(up, d) {
              if (up.data.dead.value) return;
              const bytes = new Uint8Array(d);
              const answer = () => {
                client.data.answers++;
                send(client, bytes);
              };
              if (delayMs > 0 && truncateAt === undefined) {
                setTimeout(() => up.data.dead.value || answer(), delayMs); // same delay for every chunk: order kept
                return;
              }
              if (truncateAt === undefined) {
                answer();
                return;
              }
              const room = truncateAt - up.data.relayed;
              up.data.relayed += bytes.byteLength;
              if (room > 0) send(client, room >= bytes.byteLength ? bytes : bytes.subarray(0, room));
              if (up.data.relayed >= truncateAt) {
                // cut both ways, as a connection reset mid-body would
                client.end();
                up.end();
              }
            },
            drain: flush,
            close(up) {
              open.delete(up);
              if (!up.data.dead.value) client.end();
            },
            error(up) {
              up.end();
            },
          },
        }).catch(() => client.end());
      },
      data(client, d) {
        if (client.data.dead.value) return;
        const bytes = new Uint8Array(d);
        toTarget.push(Buffer.from(bytes).toString("latin1"));
        if (client.data.said.length < 4096) client.data.said += Buffer.from(bytes).toString("latin1");
        if (holdMatch?.test(toTarget[toTarget.length - 1]!)) {
          holdMatch = undefined;
          holder = client;
          client.data.held = [];
        }
        if (client.data.held) client.data.held.push(bytes);
        else if (client.data.peer) send(client.data.peer, bytes);
        else client.data.early.push(bytes);
      },
      drain: flush,
      close(client) {
        open.delete(client);
        clients.delete(client);
        if (!client.data.dead.value) client.data.peer?.end();
      },
      error(client) {
        client.end();
      },
    },
  });
  return {
    port: server.port,
    cut() {
      isCut = true;
      for (const s of [...open]) s.end();
    },
    restore() {
      isCut = false;
    },
    truncateResponses(bytes: number | undefined) {
      truncateAt = bytes;
    },
    delayResponses(ms: number) {
      delayMs = ms;
    },
    holdOn(match: RegExp) {
      holdMatch = match;
    },
    holding: () => holder?.data.held !== undefined,
    release() {
      const c = holder;
      holder = undefined;
      if (!c?.data.held) return;
      const held = c.data.held;
      c.data.held = undefined;
      if (!clients.has(c)) return;
      for (const d of held) if (c.data.peer) send(c.data.peer, d);
      else c.data.early.push(d);
    },
    blackhole(match?: RegExp): number {
      let n = 0;
      for (const s of clients) {
        if (s.data.dead.value || (match !== undefined && !match.test(s.data.said))) continue;
        s.data.dead.value = true;
        n++;
      }
      return n;
    },
    accepted: () => accepted,
    connected: () => clients.size,
    answered(except?: RegExp): number {
      let n = 0;
      for (const c of clients) if (except === undefined || !except.test(c.data.said)) n += c.data.answers;
      return n;
    },
    sent(text: string): number {
      return toTarget.filter((c) => c.includes(text)).length;
    },
    close() {
      isCut = true;
      for (const s of [...open]) s.end();
      server.stop(true);
    },
  };
}
