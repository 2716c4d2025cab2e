'use strict';
// Drives ali-ons (a Node.js port of the RocketMQ Java client, which speaks
// RocketMQ's remoting protocol with JSON headers) for compat/alions_test.go.
// It writes one JSON object a line on stdout, and reads its settings from
// the environment:
//
//   MODE=produce  NAMESRV TOPIC COUNT [PREFIX=m] [DELAY_LEVEL]
//     sends COUNT messages "<PREFIX><i>", tag TagA for even i and TagB for
//     odd, key "<PREFIX>-k<i>", and prints {"event":"sent",...} for each
//     (began: when its send began, at: when it was answered), then
//     {"event":"done"} and exits.
//   MODE=consume  NAMESRV TOPIC GROUP [EXPR=*] [BROADCAST=1]
//                 [RETRY_ONCE=b1,b2] [FAIL_ALWAYS=b1,b2] [MAX_RECONSUME=16]
//     subscribes and prints {"event":"got",...} for every delivery; bodies
//     in RETRY_ONCE ask for a retry (ACTION_RETRY) on their first delivery,
//     bodies in FAIL_ALWAYS throw on every one. (ali-ons drops the
//     ACTION_RETRY of a message that is itself a retry: its retry-topic
//     handler does not pass the answer on. A throw is a failure on every
//     delivery.) It prints {"event":"ready"} once
//     subscribed, and when its standard input closes it shuts the consumer
//     down (committing offsets), prints {"event":"closed"} and exits.
//
// Any failure prints {"event":"error",...} on stdout and exits non-zero.
const { Producer, Consumer, Message } = require('ali-ons');

const env = process.env;
// ali-ons asks for an HTTP client to find name servers by an address
// service; with nameSrv set it never calls it.
const httpclient = { request() { throw new Error('alions.js: unexpected HTTP request'); } };
const quiet = env.ALIONS_LOG ? console : { info() {}, warn() {}, debug() {}, error() {} };

function out(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function fail(err) {
  out({ event: 'error', message: String((err && err.stack) || err) });
  process.exit(1);
}

function list(name) { return new Set((env[name] || '').split(',').filter(Boolean)); }

async function produce() {
  const producer = new Producer({ httpclient, nameSrv: env.NAMESRV, producerGroup: env.GROUP || 'alions_producer', logger: quiet });
  await producer.ready();
  const prefix = env.PREFIX || 'm';
  for (let i = 0; i < Number(env.COUNT); i++) {
    const m = new Message(env.TOPIC, i % 2 === 0 ? 'TagA' : 'TagB', prefix + i);
    m.keys = [prefix + '-k' + i];
    if (env.DELAY_LEVEL) m.delayTimeLevel = Number(env.DELAY_LEVEL);
    const began = Date.now();
    const r = await producer.send(m);
    out({ event: 'sent', body: prefix + i, status: r.sendStatus, msgId: r.msgId,
      queueId: Number(r.messageQueue.queueId), queueOffset: Number(r.queueOffset), began, at: Date.now() });
  }
  await producer.close();
  out({ event: 'done' });
  process.exit(0);
}

async function consume() {
  const once = list('RETRY_ONCE');
  const always = list('FAIL_ALWAYS');
  const consumer = new Consumer({
    httpclient, nameSrv: env.NAMESRV, consumerGroup: env.GROUP, logger: quiet,
    isBroadcast: env.BROADCAST === '1',
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    maxReconsumeTimes: Number(env.MAX_RECONSUME || 16),
    // Tests run for seconds, not minutes: rebalance and persist offsets often.
    rebalanceInterval: 1000,
    persistConsumerOffsetInterval: 500,
    instanceName: env.INSTANCE || 'DEFAULT',
  });
  // Routes for a group's retry topic appear only after its first heartbeat,
  // as with an Apache broker; the client reports that as an error and
  // retries, so errors are printed, not fatal.
  consumer.on('error', err => out({ event: 'client_error', message: String(err && err.message) }));
  consumer.subscribe(env.TOPIC, env.EXPR || '*', async msg => {
    const body = msg.body.toString();
    out({ event: 'got', body, topic: msg.topic, tags: msg.tags, keys: msg.keys,
      msgId: msg.msgId, reconsumeTimes: Number(msg.reconsumeTimes), queueId: Number(msg.queueId),
      queueOffset: Number(msg.queueOffset), bornTimestamp: Number(msg.bornTimestamp), at: Date.now() });
    if (always.has(body)) throw new Error('alions.js: failing ' + body + ' on purpose');
    if (once.delete(body)) return Consumer.ACTION_RETRY;
  });
  await consumer.ready();
  out({ event: 'ready' });
  process.stdin.resume();
  process.stdin.on('end', async () => {
    try {
      await consumer.close();
      out({ event: 'closed' });
      process.exit(0);
    } catch (err) {
      fail(err);
    }
  });
}

process.on('unhandledRejection', fail);
({ produce, consume })[env.MODE]?.().catch(fail) ?? fail('MODE must be produce or consume, not ' + env.MODE);
