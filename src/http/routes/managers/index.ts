// The Managers collection and its one Manager, this service itself (a
// software service, ManagerType Service, whose ServiceEntryPointUUID is
// ServiceRoot's UUID), with the network protocols it really speaks and,
// when it serves HTTPS, the certificate it presents
// (NetworkProtocol/HTTPS/Certificates), which the CertificateService
// replaces.
import type { FastifyPluginAsync } from 'fastify';
import type { CertificateFacts } from '../../certificate.js';
import type { Context } from '../../context.js';
import { FABRIC, HTTPS_CERTIFICATE, HTTPS_CERTIFICATES, MANAGER, MANAGERS, NETWORK_PROTOCOL, paths } from '../../paths.js';
import { resource } from '../../plugins/protocol.js';
import { collection, link, odata } from '../../redfish.js';

const ENABLED = { State: 'Enabled', Health: 'OK' } as const;

/** The Certificate resource of the certificate being served. */
export function certificateBody(f: CertificateFacts): Record<string, unknown> {
  return {
    ...odata(HTTPS_CERTIFICATE, 'Certificate'),
    Name: 'HTTPS certificate',
    Description: 'The certificate this service presents to HTTPS clients.',
    CertificateString: f.pem,
    CertificateType: f.type,
    CertificateUsageTypes: ['Web'],
    Issuer: f.issuer,
    Subject: f.subject,
    ValidNotBefore: f.validNotBefore,
    ValidNotAfter: f.validNotAfter,
    SerialNumber: f.serialNumber,
    Fingerprint: f.fingerprint,
    FingerprintHashAlgorithm: 'TPM_ALG_SHA256',
    KeyUsage: f.keyUsage,
  };
}

function networkProtocol(ctx: Context): Record<string, unknown> {
  const port = ctx.port === null ? {} : { Port: ctx.port };
  const tls = ctx.tls !== null;
  return {
    ...odata(NETWORK_PROTOCOL, 'ManagerNetworkProtocol'),
    Name: 'Network protocols of this service',
    Description: tls
      ? 'Redfish over HTTPS; a plain-HTTP request on the same port gets only a 308 redirect to https, nothing of the service.'
      : 'Redfish over plain HTTP (the service was started without --http-tls-cert and --http-tls-key).',
    Status: ENABLED,
    HTTP: tls ? { ProtocolEnabled: false } : { ProtocolEnabled: true, ...port },
    HTTPS: tls ? { ProtocolEnabled: true, ...port, Certificates: link(HTTPS_CERTIFICATES) } : { ProtocolEnabled: false },
    SSDP: { ProtocolEnabled: false },
  };
}

export const managerRoutes: FastifyPluginAsync<{ ctx: Context }> = async (app, { ctx }) => {
  resource(app, MANAGERS, { GET: { handler: async () => collection(MANAGERS, 'ManagerCollection', 'Managers', [MANAGER]) } });
  resource(app, MANAGER, {
    GET: {
      handler: async () => ({
        ...odata(MANAGER, 'Manager'),
        Name: 'cxl-mhd fabric manager',
        Description: `The software service that manages the CXL multi-headed device ${ctx.pool} and serves this Redfish service.`,
        ManagerType: 'Service',
        UUID: ctx.events.subs.identity.manager,
        ServiceEntryPointUUID: ctx.uuid,
        Status: ENABLED,
        NetworkProtocol: link(NETWORK_PROTOCOL),
        Links: {
          ManagerForChassis: [link(paths.chassis(ctx.pool))],
          'ManagerForChassis@odata.count': 1,
          ManagerForFabrics: [link(FABRIC)],
          'ManagerForFabrics@odata.count': 1,
        },
      }),
    },
  });
  resource(app, NETWORK_PROTOCOL, { GET: { handler: async () => networkProtocol(ctx) } });
  // Without TLS there is no certificate: no collection either (HTTPS is shown disabled).
  const tls = ctx.tls;
  if (tls === null) return;
  resource(app, HTTPS_CERTIFICATES, {
    GET: { handler: async () => collection(HTTPS_CERTIFICATES, 'CertificateCollection', 'HTTPS certificates', [HTTPS_CERTIFICATE]) },
  });
  resource(app, HTTPS_CERTIFICATE, { GET: { handler: async () => certificateBody(tls.current) } });
};
