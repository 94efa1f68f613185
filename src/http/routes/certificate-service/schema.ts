// The body of CertificateService.ReplaceCertificate. The schema says what
// the parameters are (for openapi.yaml) and checks their JSON types; the
// handler checks the rest (missing, unknown, values), so that each refusal
// is the Base registry's ActionParameter… message.
export const CERTIFICATE_TYPES = ['PEM', 'PEMchain'] as const;
export type CertificateType = (typeof CERTIFICATE_TYPES)[number];

export const replaceCertificateSchema = {
  type: 'object',
  description:
    'Replace the HTTPS certificate. All of CertificateString, CertificateType and CertificateUri are required; the private key may follow the certificate in CertificateString.',
  properties: {
    CertificateString: {
      type: 'string',
      description: 'The PEM certificate (or chain, leaf first), optionally followed by its new private key.',
    },
    CertificateType: { type: 'string', description: `One of ${CERTIFICATE_TYPES.join(', ')}.` },
    CertificateUri: {
      type: 'object',
      description: 'The certificate being replaced.',
      properties: { '@odata.id': { type: 'string' } },
    },
  },
} as const;

export interface ReplaceCertificate {
  CertificateString: string;
  CertificateType: CertificateType;
}
