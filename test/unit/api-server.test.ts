// The plugin HTTP API through app.inject with the fake driver: the Docker 20.10 trace call by call,
// normalisation, error mapping, malformed input, observer and concurrency.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { buildApi, PLUGIN_CONTENT_TYPE, type ApiObserver } from '../../src/api/server';
import { OverlayError, type ErrorCode } from '../../src/errors';
import { FakeDriver } from '../fakes/fake-driver';
import { parseCidr } from '../../src/domain/ipv4';

const silent = pino({ level: 'silent' });

interface Answer {
  status: number;
  body: string;
  json: Record<string, unknown>;
  contentType: string | undefined;
}

/** POST as Docker does: no Content-Type; body undefined = no body at all. */
async function post(app: ReturnType<typeof buildApi>, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await app.inject({ method: 'POST', url: path, payload: body, headers });
  return { status: r.statusCode, body: r.body, json: JSON.parse(r.body), contentType: r.headers['content-type'] as string | undefined };
}

/** An app whose every request's Content-Type header is recorded (Docker sends none). */
function setup(opts: { observer?: ApiObserver; logger?: pino.Logger } = {}) {
  const driver = new FakeDriver();
  const app = buildApi(driver, opts.logger ?? silent, { observer: opts.observer });
  const contentTypes: (string | undefined)[] = [];
  app.addHook('onRequest', (req, _reply, done) => {
    contentTypes.push(req.headers['content-type']);
    done();
  });
  return { driver, app, contentTypes };
}

// Request bodies as Docker 20.10 sent them to a logging plugin, docs/docker-protocol.md §10 (json.Encoder adds the newline).
const PORTS = '"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80},{"Proto":17,"Port":53}],"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},{"Proto":17,"IP":"","Port":53,"HostIP":"","HostPort":5353,"HostPortEnd":5353}]';
const TRACE: [path: string, request: string | undefined, answer: string][] = [
  ['/Plugin.Activate', undefined, '{"Implements":["NetworkDriver","IpamDriver"]}'],
  ['/NetworkDriver.GetCapabilities', undefined, '{"Scope":"local","ConnectivityScope":"global"}'],
  ['/IpamDriver.GetCapabilities', undefined, '{"RequiresMACAddress":false,"RequiresRequestReplay":false}'],
  ['/IpamDriver.GetDefaultAddressSpaces', undefined, '{"LocalDefaultAddressSpace":"tracer-local","GlobalDefaultAddressSpace":"tracer-global"}'],
  ['/IpamDriver.RequestPool', '{"AddressSpace":"tracer-local","Pool":"","SubPool":"","Options":{"network":"blue"},"V6":false}', '{"PoolID":"pool-10.77.5.0-24","Pool":"10.77.5.0/24","Data":{}}'],
  ['/IpamDriver.RequestAddress', '{"PoolID":"pool-10.77.5.0-24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}', '{"Address":"10.77.5.2/24","Data":{}}'],
  ['/NetworkDriver.CreateNetwork', '{"NetworkID":"NID","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{"foo":"bar"}},"IPv4Data":[{"AddressSpace":"tracer-local","Gateway":"10.77.5.1/24","Pool":"10.77.5.0/24"}],"IPv6Data":[]}', '{}'],
  ['/NetworkDriver.CreateNetwork', '{"NetworkID":"NID2","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"172.17.0.1/16","Pool":"172.17.0.0/16"}],"IPv6Data":[]}', '{}'],
  ['/IpamDriver.RequestAddress', '{"PoolID":"pool-10.77.5.0-24","Address":"","Options":null}', '{"Address":"10.77.5.2/24","Data":{}}'],
  ['/NetworkDriver.CreateEndpoint', `{"NetworkID":"NID","EndpointID":"EID1","Interface":{"Address":"10.77.5.2/24","AddressIPv6":"","MacAddress":""},"Options":{${PORTS}}}`, '{"Interface":{}}'],
  ['/NetworkDriver.Join', `{"NetworkID":"NID","EndpointID":"EID1","SandboxKey":"<exec-root>/netns/78034037fa17","Options":{${PORTS}}}`, '{"InterfaceName":{"SrcName":"tc51776fd","DstPrefix":"eth"},"Gateway":"10.77.5.1","StaticRoutes":[{"Destination":"10.77.0.0/16","RouteType":0,"NextHop":"10.77.5.1"}]}'],
  ['/NetworkDriver.ProgramExternalConnectivity', `{"NetworkID":"NID","EndpointID":"EID1","Options":{${PORTS}}}`, '{}'],
  ['/NetworkDriver.EndpointOperInfo', '{"NetworkID":"NID","EndpointID":"EID1"}', '{"Value":{}}'],
  ['/NetworkDriver.RevokeExternalConnectivity', '{"NetworkID":"NID","EndpointID":"EID1"}', '{}'],
  ['/NetworkDriver.Leave', '{"NetworkID":"NID","EndpointID":"EID1"}', '{}'],
  ['/NetworkDriver.DeleteEndpoint', '{"NetworkID":"NID","EndpointID":"EID1"}', '{}'],
  ['/IpamDriver.ReleaseAddress', '{"PoolID":"pool-10.77.5.0-24","Address":"10.77.5.2"}', '{}'],
  ['/IpamDriver.ReleasePool', '{"PoolID":"pool-10.77.5.0-24"}', '{}'],
  ['/NetworkDriver.DeleteNetwork', '{"NetworkID":"NID"}', '{}'],
  ['/NetworkDriver.AllocateNetwork', '{"NetworkID":"NID","Options":{},"IPv4Data":[],"IPv6Data":null}', '{"Options":{}}'],
  ['/NetworkDriver.FreeNetwork', '{"NetworkID":"NID"}', '{}'],
  ['/NetworkDriver.DiscoverNew', '{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","self":true}}', '{}'],
  ['/NetworkDriver.DiscoverDelete', '{"DiscoveryType":1,"DiscoveryData":{"Address":"10.0.0.5","self":true}}', '{}'],
];

test('answers the Docker 20.10 trace byte for byte, with no Content-Type on the requests (no 415)', async () => {
  const { driver, app, contentTypes } = setup();
  driver.results.defaultAddressSpaces = { local: 'tracer-local', global: 'tracer-global' };
  for (const [path, request, answer] of TRACE) {
    const r = await post(app, path, request === undefined ? undefined : `${request}\n`);
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    assert.equal(r.body, answer, path);
    assert.equal(r.contentType, PLUGIN_CONTENT_TYPE, path);
  }
  assert.ok(contentTypes.every((c) => c === undefined), 'requests went without Content-Type');
  await app.close();
});

test('bodyless calls accept no body, Content-Length 0, whitespace, "null" and any Content-Type', async () => {
  const { app } = setup();
  const variants: [string | undefined, Record<string, string>][] = [
    [undefined, {}],
    ['', { 'content-length': '0' }],
    ['\n', {}],
    ['null\n', {}],
    ['{}', { 'content-type': 'application/json' }],
    ['{}', { 'content-type': 'text/plain' }],
  ];
  for (const [body, headers] of variants) {
    for (const path of ['/Plugin.Activate', '/NetworkDriver.GetCapabilities', '/IpamDriver.GetCapabilities', '/IpamDriver.GetDefaultAddressSpaces']) {
      const r = await post(app, path, body, headers);
      assert.equal(r.status, 200, `${path} ${JSON.stringify(body)}: ${r.body}`);
    }
  }
  const empty = await post(app, '/NetworkDriver.CreateNetwork', '', { 'content-length': '0' });
  assert.equal(empty.status, 400);
  assert.match(String(empty.json.Err), /NetworkID is required \(the request had an empty body: .*plugin restarted.*run the command again\)/);
  // A body with content but a missing field is an ordinary validation error.
  const partial = await post(app, '/NetworkDriver.CreateNetwork', '{"Options":{}}');
  assert.equal(partial.status, 400);
  assert.doesNotMatch(String(partial.json.Err), /empty body/);
  await app.close();
});

test('normalises what Docker sends before the driver sees it', async () => {
  const { driver, app } = setup();
  await post(app, '/NetworkDriver.CreateNetwork', TRACE[6]![1]);
  assert.deepEqual(driver.argsOf('createNetwork')[0], [
    {
      networkId: 'NID',
      options: { generic: { foo: 'bar' }, enableIPv6: false, internal: false },
      ipv4Data: [{ addressSpace: 'tracer-local', pool: '10.77.5.0/24', gateway: '10.77.5.1/24' }],
      ipv6Data: [],
    },
  ]);
  await post(app, '/NetworkDriver.CreateNetwork', '{"NetworkID":"N","Options":{"com.docker.network.internal":true,"com.docker.network.generic":null},"IPv4Data":[{"Pool":"10.1.0.0/24","Gateway":null,"AuxAddresses":{"h":"10.1.0.5/24"}}],"IPv6Data":null}');
  assert.deepEqual(driver.argsOf('createNetwork')[1], [
    {
      networkId: 'N',
      options: { generic: {}, enableIPv6: false, internal: true },
      ipv4Data: [{ addressSpace: '', pool: '10.1.0.0/24', auxAddresses: { h: '10.1.0.5/24' } }],
      ipv6Data: [],
    },
  ]);
  await post(app, '/NetworkDriver.CreateNetwork', '{"NetworkID":"M","Options":null}');
  assert.deepEqual(driver.argsOf('createNetwork')[2], [{ networkId: 'M', options: { generic: {}, enableIPv6: false, internal: false }, ipv4Data: [], ipv6Data: [] }]);

  await post(app, '/IpamDriver.RequestPool', '{"AddressSpace":"s","Options":null,"V6":null}');
  assert.deepEqual(driver.argsOf('requestPool')[0], [{ addressSpace: 's', pool: '', subPool: '', options: {}, v6: false }]);
  await post(app, '/IpamDriver.RequestAddress', '{"PoolID":"p","Address":"","Options":null}');
  await post(app, '/IpamDriver.RequestAddress', '{"PoolID":"p"}');
  assert.deepEqual(driver.argsOf('requestAddress'), [[{ poolId: 'p', address: '', options: {} }], [{ poolId: 'p', address: '', options: {} }]]);

  await post(app, '/NetworkDriver.CreateEndpoint', '{"NetworkID":"N","EndpointID":"E","Interface":null,"Options":null}');
  assert.deepEqual(driver.argsOf('createEndpoint')[0], [{ networkId: 'N', endpointId: 'E', address: '', addressIPv6: '', macAddress: '', options: {} }]);
  await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k","Options":null}');
  assert.deepEqual(driver.argsOf('join')[0], [{ networkId: 'N', endpointId: 'E', sandboxKey: '/k', options: {} }]);

  await post(app, '/NetworkDriver.ProgramExternalConnectivity', TRACE[11]![1]);
  await post(app, '/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E","Options":null}');
  await post(app, '/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E","Options":{"com.docker.network.portmap":null,"com.docker.network.endpoint.exposedports":null}}');
  await post(app, '/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":9000}]}}');
  const pec = driver.argsOf('programExternalConnectivity').map((a) => a[0]);
  assert.deepEqual(pec[0], {
    networkId: 'NID',
    endpointId: 'EID1',
    portMap: [
      { proto: 6, ip: '', port: 80, hostIP: '', hostPort: 8080, hostPortEnd: 8080 },
      { proto: 17, ip: '', port: 53, hostIP: '', hostPort: 5353, hostPortEnd: 5353 },
    ],
    exposedPorts: [{ proto: 6, port: 80 }, { proto: 17, port: 53 }],
  });
  assert.deepEqual(pec[1], { networkId: 'N', endpointId: 'E', portMap: [], exposedPorts: [] });
  assert.deepEqual(pec[2], pec[1]);
  assert.deepEqual((pec[3] as { portMap: unknown }).portMap, [{ proto: 6, ip: '', port: 80, hostIP: '', hostPort: 9000, hostPortEnd: 9000 }]);
  await app.close();
});

test('CreateEndpoint answers only the non-empty fields the driver returned; Join exactly its result', async () => {
  const { driver, app } = setup();
  const ep = '{"NetworkID":"N","EndpointID":"E","Interface":{"Address":"10.1.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{}}';
  driver.results.createEndpoint = { macAddress: '02:42:0a:01:00:02' };
  assert.equal((await post(app, '/NetworkDriver.CreateEndpoint', ep)).body, '{"Interface":{"MacAddress":"02:42:0a:01:00:02"}}');
  driver.results.createEndpoint = { macAddress: '' };
  assert.equal((await post(app, '/NetworkDriver.CreateEndpoint', ep)).body, '{"Interface":{}}');
  driver.results.join = { containerVeth: 'v1', gateway: null, routes: [{ destination: parseCidr('10.1.0.1/32'), nextHop: null }], disableGatewayService: true };
  const j = await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k"}');
  assert.equal(j.body, '{"InterfaceName":{"SrcName":"v1","DstPrefix":"eth"},"Gateway":"","StaticRoutes":[{"Destination":"10.1.0.1/32","RouteType":1}],"DisableGatewayService":true}');
  driver.results.endpointOperInfo = { id: 'E', veth: 'v1' };
  assert.equal((await post(app, '/NetworkDriver.EndpointOperInfo', '{"NetworkID":"N","EndpointID":"E"}')).body, '{"Value":{"id":"E","veth":"v1"}}');
  driver.results.requestPool = { poolId: 'p', pool: '10.1.0.0/24', data: { 'com.docker.network.gateway': '10.1.0.1/24' } };
  assert.equal((await post(app, '/IpamDriver.RequestPool', '{}')).body, '{"PoolID":"p","Pool":"10.1.0.0/24","Data":{"com.docker.network.gateway":"10.1.0.1/24"}}');
  await app.close();
});

test('driver errors: status by code, never 404, body {"Err","Error"} on network and IPAM routes', async () => {
  const cases: [ErrorCode, number][] = [
    ['INVALID', 400],
    ['CONFLICT', 409],
    ['UNAVAILABLE', 503],
    ['NOT_FOUND', 500],
    ['UNSUPPORTED', 500],
    ['KERNEL', 500],
    ['INTERNAL', 500],
  ];
  const calls: [string, string, Parameters<FakeDriver['fail']>[0]][] = [
    ['/IpamDriver.RequestAddress', '{"PoolID":"p"}', 'requestAddress'],
    ['/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k"}', 'join'],
    ['/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E"}', 'programExternalConnectivity'],
    ['/NetworkDriver.RevokeExternalConnectivity', '{"NetworkID":"N","EndpointID":"E"}', 'revokeExternalConnectivity'],
  ];
  for (const [code, status] of cases) {
    const { driver, app } = setup();
    for (const [, , method] of calls) driver.fail(method, new OverlayError(code, `${code.toLowerCase()}: address 10.1.0.7 is taken`));
    for (const [path, body] of calls) {
      const r = await post(app, path, body);
      assert.equal(r.status, status, `${code} on ${path}`);
      assert.deepEqual(r.json, { Err: `${code.toLowerCase()}: address 10.1.0.7 is taken`, Error: `${code.toLowerCase()}: address 10.1.0.7 is taken` });
      assert.equal(r.contentType, PLUGIN_CONTENT_TYPE);
    }
    await app.close();
  }
});

test('an unexpected exception is a 500 {"Err"} logged once at error level with the request id and call', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const { driver, app } = setup({ logger });
  driver.fail('join', new TypeError("Cannot read properties of undefined (reading 'x')"));
  const r = await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k"}');
  assert.equal(r.status, 500);
  assert.match(String(r.json.Err), /internal error in \/NetworkDriver.Join: Cannot read properties/);
  assert.equal(r.json.Error, r.json.Err);
  const errors = lines.filter((l) => l.level === 50);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.call, 'NetworkDriver.Join');
  assert.equal(typeof errors[0]!.reqId, 'string');
  assert.ok(lines.some((l) => l.level === 20 && l.call === 'NetworkDriver.Join' && l.status === 500 && l.EndpointID === 'E' && typeof l.ms === 'number'));

  driver.fail('leave', Object.assign(new Error('foreign'), { statusCode: 404 }), 1);
  assert.equal((await post(app, '/NetworkDriver.Leave', '{"NetworkID":"N","EndpointID":"E"}')).status, 500, 'a foreign statusCode is not trusted');
  driver.fail('getDefaultAddressSpaces', new Error('sync throw'));
  assert.equal((await post(app, '/IpamDriver.GetDefaultAddressSpaces')).status, 500);
  driver.fail('join', 'a string, not an Error', 1);
  assert.match(String((await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k"}')).json.Err), /a string, not an Error/);
  driver.results.join = undefined as never; // a driver bug: no answer
  const none = await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k"}');
  assert.equal(none.status, 500);
  assert.match(String(none.json.Err), /returned no answer/);
  assert.equal(lines.filter((l) => l.level === 50).length, 5, 'one error line per failed call');
  assert.equal(lines.filter((l) => l.level === 40).length, 0, 'and no second (warn) line');
  await app.close();
});

test('malformed requests get non-2xx {"Err"} naming the path and field, and never reach the driver', async () => {
  const { driver, app } = setup();
  const cases: [path: string, body: string, status: number, err: RegExp][] = [
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":', 400, /^invalid JSON in request to \/NetworkDriver.CreateNetwork: /],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N",}', 400, /invalid JSON/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","__proto__":{"polluted":1}}', 400, /__proto__/],
    ['/NetworkDriver.Join', `{"NetworkID":"N","EndpointID":"E","SandboxKey":"k","Options":{"a":${'['.repeat(300000)}${']'.repeat(300000)}}}`, 400, /invalid JSON in request to \/NetworkDriver.Join: nested too deeply/],
    ['/NetworkDriver.CreateNetwork', '[1,2]', 400, /CreateNetwork: the body must be object/],
    ['/NetworkDriver.CreateNetwork', '"NID"', 400, /the body must be object/],
    ['/NetworkDriver.CreateNetwork', '{"Options":{}}', 400, /CreateNetwork: NetworkID is required/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":5}', 400, /NetworkID must be string/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":""}', 400, /NetworkID must not be empty/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","Options":"x"}', 400, /Options must be object or null/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","Options":{"com.docker.network.generic":{"mtu":1400}}}', 400, /Options.com.docker.network.generic.mtu must be string/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","Options":{"com.docker.network.enable_ipv6":"yes"}}', 400, /enable_ipv6 must be boolean or null/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","IPv4Data":{"Pool":"x"}}', 400, /IPv4Data must be array or null/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","IPv4Data":[{"Gateway":"10.0.0.1/24"}]}', 400, /IPv4Data\[0\].Pool is required/],
    ['/NetworkDriver.CreateNetwork', '{"NetworkID":"N","IPv4Data":[{"Pool":"p","AuxAddresses":[]}]}', 400, /IPv4Data\[0\].AuxAddresses must be object or null/],
    ['/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E"}', 400, /Join: SandboxKey is required/],
    ['/NetworkDriver.CreateEndpoint', '{"NetworkID":"N","EndpointID":"E","Interface":{"Address":7}}', 400, /Interface.Address must be string or null/],
    ['/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E","Options":{"com.docker.network.portmap":[{"Proto":"tcp","Port":80}]}}', 400, /portmap\[0\].Proto must be integer/],
    ['/NetworkDriver.ProgramExternalConnectivity', '{"NetworkID":"N","EndpointID":"E","Options":{"com.docker.network.portmap":[{"Proto":6,"Port":70000}]}}', 400, /Port must be <= 65535/],
    ['/IpamDriver.RequestPool', '{"V6":"false"}', 400, /V6 must be boolean or null/],
    ['/IpamDriver.RequestPool', '{"Options":{"network":["blue"]}}', 400, /Options.network must be string/],
    ['/IpamDriver.RequestAddress', '{"Address":""}', 400, /PoolID is required/],
    ['/IpamDriver.ReleaseAddress', '{"PoolID":"p"}', 400, /Address is required/],
    ['/IpamDriver.ReleasePool', '{"PoolID":null}', 400, /PoolID must be string/],
    ['/NetworkDriver.Nope', '{}', 404, /^overlay-flannel does not implement \/NetworkDriver.Nope$/],
    ['/', '{}', 404, /does not implement \/$/],
    ['/VolumeDriver.Create', '{"broken', 404, /does not implement \/VolumeDriver.Create/],
  ];
  for (const [path, body, status, err] of cases) {
    const r = await post(app, path, body);
    assert.equal(r.status, status, `${path} ${body}: ${r.body}`);
    assert.match(String(r.json.Err), err, `${path} ${body}`);
    assert.equal(r.json.Error, r.json.Err);
    assert.equal(r.contentType, PLUGIN_CONTENT_TYPE);
  }
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    const r = await app.inject({ method, url: '/Plugin.Activate' });
    assert.equal(r.statusCode, 404);
    assert.equal(JSON.parse(r.body).Err, `overlay-flannel does not implement ${method} /Plugin.Activate`);
  }
  const huge = await post(app, '/NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 'N', pad: 'x'.repeat(2 * 1024 * 1024) }));
  assert.equal(huge.status, 413);
  assert.match(String(huge.json.Err), /larger than the 1048576-byte limit/);
  const badType = await post(app, '/Plugin.Activate', '{}', { 'content-type': ';;' });
  assert.ok(badType.status >= 400 && typeof badType.json.Err === 'string');
  assert.deepEqual(driver.calls, []);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  await app.close();
});

test('unknown keys from newer engines are accepted at every level', async () => {
  const { driver, app } = setup();
  const r = await post(app, '/NetworkDriver.CreateNetwork', '{"NetworkID":"N","Future":1,"Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.generic":{}},"IPv4Data":[{"Pool":"10.1.0.0/24","Extra":{"x":1}}],"IPv6Data":[]}');
  assert.equal(r.status, 200, r.body);
  const j = await post(app, '/NetworkDriver.Join', '{"NetworkID":"N","EndpointID":"E","SandboxKey":"/k","Options":{"com.docker.network.generic":{"ParentEndpoints":[],"ChildEndpoints":[]}},"GwPriority":0}');
  assert.equal(j.status, 200, j.body);
  assert.deepEqual((driver.argsOf('join')[0]![0] as { options: unknown }).options, { 'com.docker.network.generic': { ParentEndpoints: [], ChildEndpoints: [] } });
  await app.close();
});

test('the observer sees every answered call with its status and duration; a failing observer changes nothing', async () => {
  const seen: [string, number, number][] = [];
  const { app } = setup({ observer: { onCall: (call, status, ms) => seen.push([call, status, ms]) } });
  await post(app, '/Plugin.Activate');
  await post(app, '/NetworkDriver.Leave', '{}');
  await post(app, '/Nope');
  assert.deepEqual(seen.map(([c, s]) => [c, s]), [['Plugin.Activate', 200], ['NetworkDriver.Leave', 400], ['unknown', 404]]);
  assert.ok(seen.every(([, , ms]) => typeof ms === 'number' && ms >= 0));
  const { app: app2 } = setup({ observer: { onCall: () => { throw new Error('metrics broke'); } } });
  assert.equal((await post(app2, '/Plugin.Activate')).status, 200);
  await app.close();
  await app2.close();
});

test('calls are not serialised: parallel Joins reach the driver together', async () => {
  const { driver, app } = setup();
  const release1 = driver.hold('join');
  const release2 = driver.hold('join');
  const body = (e: string) => `{"NetworkID":"N","EndpointID":"${e}","SandboxKey":"/k"}`;
  const p1 = post(app, '/NetworkDriver.Join', body('E1'));
  const p2 = post(app, '/NetworkDriver.Join', body('E2'));
  for (let i = 0; i < 100 && driver.argsOf('join').length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(driver.argsOf('join').length, 2, 'both calls are in the driver while neither has finished');
  release2();
  release1();
  assert.deepEqual([(await p1).status, (await p2).status], [200, 200]);
  await app.close();
});

test('an OverlayError with a cause: Docker reads our words, the debug log the raw cause', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const { driver, app } = setup({ logger });
  const raw = Object.assign(new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 192.0.2.254:2379'), { code: 14 });
  const ours = new OverlayError('UNAVAILABLE', 'allocate address in 10.1.5.0/24: etcd at http://192.0.2.254:2379 refused the connection', { cause: raw });
  driver.fail('requestAddress', ours, 1);
  const r = await post(app, '/IpamDriver.RequestAddress', '{"PoolID":"overlay-flannel/default/10.1.5.0/24","Address":"","Options":{}}');
  assert.equal(r.status, 503);
  assert.equal(r.json.Err, ours.message, 'Docker gets our words only');
  const debug = lines.find((l) => l.level === 20 && typeof l.raw === 'string');
  assert.ok(debug, 'a debug line with the raw cause');
  assert.match(String(debug!.raw), /^OverlayError: allocate address .* <- Error: 14 UNAVAILABLE: .*ECONNREFUSED 192\.0\.2\.254:2379$/);
  assert.equal(debug!.call, 'IpamDriver.RequestAddress');
  await app.close();
});
