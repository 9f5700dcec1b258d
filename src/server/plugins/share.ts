// Fastify encapsulates every plugin: its hooks, decorators and handlers apply inside it only. A plugin
// whose hook must apply to the routes of the instance that registers it (drain's `connection: close`,
// client authentication's check) is marked with the 'skip-override' property, which is what the
// fastify-plugin package sets (Fastify's Plugins reference, "Handle the scope").

import type { FastifyPluginAsync, FastifyPluginOptions } from 'fastify';

export function sharedWithParent<Options extends FastifyPluginOptions>(plugin: FastifyPluginAsync<Options>): FastifyPluginAsync<Options> {
  (plugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;
  return plugin;
}
