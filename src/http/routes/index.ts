// Every route of the northbound, one fastify plugin per Redfish resource
// (and the page), each with its request schemas beside it.
import type { FastifyPluginAsync } from 'fastify';
import type { Context } from '../context.js';
import { accountServiceRoutes } from './account-service/index.js';
import { aggregationServiceRoutes } from './aggregation-service/index.js';
import { certificateServiceRoutes } from './certificate-service/index.js';
import { chassisRoutes } from './chassis/index.js';
import { eventServiceRoutes } from './event-service/index.js';
import { fabricRoutes } from './fabrics/index.js';
import { managerRoutes } from './managers/index.js';
import { openapiRoutes } from './openapi/index.js';
import { registriesRoutes } from './registries/index.js';
import { schemaRoutes } from './schemas/index.js';
import { serviceRootRoutes } from './service-root/index.js';
import { sessionServiceRoutes } from './session-service/index.js';
import { telemetryServiceRoutes } from './telemetry-service/index.js';
import { pageRoutes } from './ui/index.js';

export const routes: FastifyPluginAsync<{ ctx: Context }> = async (app, opts) => {
  await app.register(serviceRootRoutes, opts);
  await app.register(sessionServiceRoutes, opts);
  await app.register(accountServiceRoutes, opts);
  await app.register(eventServiceRoutes, opts);
  await app.register(telemetryServiceRoutes, opts);
  await app.register(registriesRoutes);
  await app.register(schemaRoutes);
  await app.register(openapiRoutes);
  await app.register(aggregationServiceRoutes);
  await app.register(chassisRoutes, opts);
  await app.register(fabricRoutes, opts);
  await app.register(managerRoutes, opts);
  await app.register(certificateServiceRoutes, opts);
  await app.register(pageRoutes, opts);
};
