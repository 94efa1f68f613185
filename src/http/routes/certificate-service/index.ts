// The CertificateService: where the service's certificates are
// (CertificateLocations) and ReplaceCertificate for the HTTPS certificate,
// which needs ConfigureManager (Administrator). A service that speaks plain
// HTTP has no certificate: it lists none and does not offer the action (a
// POST to it says why).
import type { FastifyPluginAsync } from 'fastify';
import { CertificateNotStored, CertificateRejected } from '../../certificate.js';
import type { Context } from '../../context.js';
import { CERTIFICATE_LOCATIONS, CERTIFICATE_SERVICE, cleanPath, HTTPS_CERTIFICATE, REPLACE_CERTIFICATE } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { link, odata, RedfishError } from '../../redfish.js';
import { certificateBody } from '../managers/index.js';
import { CERTIFICATE_TYPES, type CertificateType, type ReplaceCertificate, replaceCertificateSchema } from './schema.js';

const ACTION = 'CertificateService.ReplaceCertificate';
const PARAMETERS = ['CertificateString', 'CertificateType', 'CertificateUri'] as const;

/** The action's parameters, each refusal a Base ActionParameter… message. */
function parameters(body: unknown): ReplaceCertificate {
  const b = (body ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (k.includes('@')) continue;
    if (k === 'Password') {
      throw new RedfishError(
        400,
        'ActionParameterNotSupported',
        `The parameter Password for the action ${ACTION} is not supported: PEM keys are sent unencrypted.`,
        [k, ACTION],
      );
    }
    if (!(PARAMETERS as readonly string[]).includes(k)) {
      throw new RedfishError(400, 'ActionParameterUnknown', `The action ${ACTION} was submitted with the invalid parameter ${k}.`, [
        ACTION,
        k,
      ]);
    }
  }
  for (const k of PARAMETERS) {
    if (b[k] === undefined) {
      throw new RedfishError(
        400,
        'ActionParameterMissing',
        `The action ${ACTION} requires the parameter ${k} to be present in the request body.`,
        [ACTION, k],
      );
    }
  }
  const type = b.CertificateType as string;
  if (!(CERTIFICATE_TYPES as readonly string[]).includes(type)) {
    throw new RedfishError(
      400,
      'ActionParameterValueNotInList',
      `The value '${type}' for the parameter CertificateType in the action ${ACTION} is not in the list of acceptable values (${CERTIFICATE_TYPES.join(', ')}).`,
      [type, 'CertificateType', ACTION],
    );
  }
  const uri = cleanPath(String((b.CertificateUri as Record<string, unknown>)['@odata.id'] ?? ''));
  if (uri !== HTTPS_CERTIFICATE) {
    throw new RedfishError(
      400,
      'ActionParameterValueError',
      `The value for the parameter CertificateUri in the action ${ACTION} is invalid: the certificate this service can replace is ${HTTPS_CERTIFICATE}.`,
      ['CertificateUri', ACTION],
    );
  }
  return { CertificateString: b.CertificateString as string, CertificateType: type as CertificateType };
}

export const certificateServiceRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  const certificates = () => (ctx.tls ? [link(HTTPS_CERTIFICATE)] : []);
  resource(app, CERTIFICATE_SERVICE, {
    GET: {
      handler: async () => ({
        ...odata(CERTIFICATE_SERVICE, 'CertificateService'),
        Name: 'Certificate service',
        Description: ctx.tls
          ? 'The HTTPS certificate of this service, replaceable while it serves.'
          : 'This service speaks plain HTTP: it has no certificate to show or replace.',
        CertificateLocations: link(CERTIFICATE_LOCATIONS),
        ...(ctx.tls
          ? {
              Actions: {
                [`#${ACTION}`]: { target: REPLACE_CERTIFICATE, 'CertificateType@Redfish.AllowableValues': [...CERTIFICATE_TYPES] },
              },
            }
          : {}),
      }),
    },
  });
  resource(app, CERTIFICATE_LOCATIONS, {
    GET: {
      handler: async () => ({
        ...odata(CERTIFICATE_LOCATIONS, 'CertificateLocations'),
        Name: 'Certificate locations',
        Links: { Certificates: certificates(), 'Certificates@odata.count': certificates().length },
      }),
    },
  });
  resource(app, REPLACE_CERTIFICATE, {
    POST: {
      privilege: 'ConfigureManager',
      schema: { body: replaceCertificateSchema },
      handler: async (req, reply) => {
        const tls = ctx.tls;
        if (tls === null) {
          throw new RedfishError(
            400,
            'ActionNotSupported',
            `The action ${ACTION} is not supported: this service speaks plain HTTP and has no certificate (start serve with --http-tls-cert and --http-tls-key).`,
            [ACTION],
          );
        }
        const p = parameters(req.body);
        try {
          const now = await tls.replace(p.CertificateString, p.CertificateType);
          reply.header('Location', HTTPS_CERTIFICATE);
          return certificateBody(now);
        } catch (e) {
          if (e instanceof CertificateRejected) {
            throw new RedfishError(
              400,
              'ActionParameterValueError',
              `The value for the parameter CertificateString in the action ${ACTION} is invalid: ${e.message}.`,
              ['CertificateString', ACTION],
              'Send a PEM certificate that is valid now and fits the key in use, or follow it with its own unencrypted key.',
            );
          }
          if (e instanceof CertificateNotStored) throw new RedfishError(500, 'InternalError', `${ACTION} failed: ${e.message}.`);
          throw e;
        }
      },
    },
  });
};
