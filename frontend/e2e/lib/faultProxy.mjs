// A small HTTP proxy in front of the server that breaks live connections the way networks
// do: a WebSocket upgrade refused (as by a proxy that does not speak WebSocket), a connection
// reset mid-job (RST), a connection that silently stops carrying bytes while it stays open.
// Plain HTTP, event streams included, is passed through unless told otherwise. The Host header
// is forwarded unchanged, so the server sees the page's own origin.
import http from 'node:http';
import net from 'node:net';

/**
 * startFaultProxy listens on a free port of 127.0.0.1 and forwards to the server's port.
 * Modes: ws 'pass' | 'refuse'; sse 'pass' | 'refuse'. Open WebSockets can be reset or stalled.
 */
export async function startFaultProxy(targetPort) {
  const mode = { ws: 'pass', sse: 'pass' };
  const stats = { wsUpgrades: 0, wsRefused: 0, wsReset: 0, wsStalled: 0, sseRefused: 0, sseOpened: 0 };
  /** Open WebSocket tunnels: { client, upstream, stalled }. */
  const tunnels = new Set();
  const streams = new Set();

  const server = http.createServer((req, res) => {
    const isStream = /\/events(\?|$)/.test(req.url ?? '');
    if (isStream && mode.sse === 'refuse') {
      stats.sseRefused++;
      res.writeHead(502, { 'Content-Type': 'text/plain', Connection: 'close' });
      res.end('bad gateway');
      return;
    }
    if (isStream) stats.sseOpened++;
    const up = http.request(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (isStream) res.flushHeaders();
        ur.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
    if (isStream) {
      streams.add(res);
      res.on('close', () => {
        streams.delete(res);
        up.destroy();
      });
    }
  });

  server.on('upgrade', (req, client, head) => {
    stats.wsUpgrades++;
    if (mode.ws === 'refuse') {
      stats.wsRefused++;
      client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad gateway');
      return;
    }
    const tunnel = { client, upstream: null, stalled: false };
    tunnels.add(tunnel);
    const upstream = net.connect(targetPort, '127.0.0.1', () => {
      let headText = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(headText + '\r\n');
      if (head?.length) upstream.write(head);
    });
    tunnel.upstream = upstream;
    // Bytes flow both ways until the tunnel is stalled; then they vanish, and nobody is told.
    upstream.on('data', (chunk) => {
      if (!tunnel.stalled) client.write(chunk);
    });
    client.on('data', (chunk) => {
      if (!tunnel.stalled) upstream.write(chunk);
    });
    const end = () => {
      tunnels.delete(tunnel);
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', end);
    client.on('error', end);
    upstream.on('close', () => {
      if (!tunnel.stalled) end();
    });
    client.on('close', end);
  });

  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const port = server.address().port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    mode,
    /** openWebSockets is how many WebSocket tunnels are open. */
    openWebSockets: () => tunnels.size,
    /** resetWebSockets cuts every open WebSocket with a TCP reset, as a dying NAT or proxy does. */
    resetWebSockets() {
      for (const t of [...tunnels]) {
        stats.wsReset++;
        tunnels.delete(t);
        t.client.resetAndDestroy();
        t.upstream?.destroy();
      }
    },
    /** stallWebSockets makes every open WebSocket a black hole that stays open. */
    stallWebSockets() {
      for (const t of tunnels) {
        if (!t.stalled) stats.wsStalled++;
        t.stalled = true;
      }
    },
    async close() {
      for (const t of [...tunnels]) {
        t.client.destroy();
        t.upstream?.destroy();
      }
      for (const s of [...streams]) s.destroy();
      server.closeAllConnections?.();
      await new Promise((ok) => server.close(() => ok()));
    },
  };
}
