// The project's OEM schema, CxlMhd: one table of every `Oem.CxlMhd`
// property the service shows, from which the bodies get their
// `@odata.type`, and the CSDL (/redfish/v1/Schemas/CxlMhd_v1.xml) and JSON
// Schema (/redfish/v1/JsonSchemas/CxlMhd.v1_0_0.json) are generated, so
// the three can never disagree.

type Kind = 'int' | 'string' | 'bool' | 'int[]' | 'string[]';

interface Prop {
  kind: Kind;
  nullable?: boolean;
  values?: readonly string[];
  /** UCUM unit (Measures.Unit), e.g. By for bytes. */
  unit?: string;
  description: string;
}

interface OemType {
  description: string;
  props: Record<string, Prop>;
}

export const OEM_NAMESPACE = 'CxlMhd';
export const OEM_VERSION = 'v1_0_0';
export const OEM_CSDL_URI = '/redfish/v1/Schemas/CxlMhd_v1.xml';
export const OEM_JSON_SCHEMA_URI = `/redfish/v1/JsonSchemas/${OEM_NAMESPACE}.${OEM_VERSION}.json`;

const bytes = (description: string): Prop => ({ kind: 'int', unit: 'By', description });
const mib = (description: string): Prop => ({ kind: 'int', unit: 'MiBy', description });

const ORIGINS = ['defined', 'static-window', 'grant', 'redfish'] as const;

export const OEM_TYPES = {
  Chassis: {
    description: 'The pool of a cxl-mhd multi-headed device.',
    props: {
      CapacityBytes: bytes('The size of the pool.'),
      FreeBytes: bytes('The part of the pool no head holds.'),
      QuarantinedBytes: bytes('The part of the pool heads still hold after the FM released it (quarantined grants).'),
      BlockBytes: bytes('The pool block: the unit in which heads hold capacity.'),
      HeadCount: { kind: 'int', description: 'The number of heads (LDs) of the device.' },
      AttachedHeads: { kind: 'int[]', description: 'The heads whose QEMU is attached.' },
      FmldOwner: { kind: 'int', nullable: true, description: 'The head holding the FM-LD lease, null when none does.' },
      LeaseEpoch: { kind: 'int', description: 'The FM-LD lease epoch; it grows on every acquire.' },
    },
  },
  MemoryDomain: {
    description: 'The size and block of the pool.',
    props: {
      CapacityMiB: mib('The size of the pool.'),
      BlockMiB: mib('The pool block.'),
      ReferencedBytes: bytes('The bytes FM tag references (5606h) keep allocated, whether a head holds them or not.'),
      ReferencedTags: { kind: 'string[]', description: 'The tags an FM reference (5606h) keeps; 5608h lists their counts and extents.' },
    },
  },
  MemoryChunk: {
    description: 'Where a memory chunk comes from and who holds it.',
    props: {
      Origin: { kind: 'string', values: ORIGINS, description: 'defined over Redfish, a static window, or an FM-API grant made elsewhere.' },
      Tag: { kind: 'string', nullable: true, description: 'The tag its extents carry on every head it is connected to.' },
      OffsetBytes: bytes('The pool offset of the chunk.'),
      SizeBytes: bytes('The size of the chunk.'),
      Holders: { kind: 'int[]', description: 'The heads holding any part of the chunk.' },
    },
  },
  Connection: {
    description: 'Where a connection comes from and its state.',
    props: {
      Origin: { kind: 'string', values: ORIGINS, description: 'made over Redfish, a static window, or an FM-API grant made elsewhere.' },
      Shared: { kind: 'bool', description: 'Whether the capacity is shared (enable-shared adds).' },
      State: {
        kind: 'string',
        values: ['active', 'releasing', 'quarantined'],
        description:
          'releasing until QEMU has let go of the capacity; quarantined while QEMU does not show that the guest can no longer reach it.',
      },
    },
  },
  MemoryRegion: {
    description: 'The grant a memory region stands for.',
    props: {
      Origin: { kind: 'string', values: ['static-window', 'grant'], description: 'A static window of the VM, or a grant of the FM-API.' },
      Delivery: {
        kind: 'string',
        nullable: true,
        description: 'How the head received the capacity: hotplug (an added LD), dcd (extents), or null for a static window.',
      },
      State: {
        kind: 'string',
        values: ['active', 'releasing', 'quarantined'],
        description:
          'releasing until QEMU has let go of the capacity; quarantined while QEMU does not show that the guest can no longer reach it.',
      },
    },
  },
  Endpoint: {
    description: 'The QEMU behind a head.',
    props: {
      Head: { kind: 'int', description: 'The head number: the socket QEMU dialled.' },
      Attached: { kind: 'bool', description: 'Whether the head is attached.' },
      Phase: {
        kind: 'string',
        values: ['attaching', 'attached', 'refused', 'detached'],
        description: 'Where the head session is.',
      },
      Reason: { kind: 'string', nullable: true, description: 'Why the head was refused or detached.' },
      QemuPid: { kind: 'int', nullable: true, description: 'The pid of the QEMU behind the head.' },
      Delivery: { kind: 'string', nullable: true, description: 'How the head receives capacity at run time: hotplug or dcd.' },
      FmldOwner: { kind: 'bool', description: 'Whether this head holds the FM-LD lease.' },
      GrantedBytes: bytes('The capacity the head holds.'),
      SharedBytes: bytes('The part of it shared with other heads.'),
    },
  },
  EventService: {
    description: 'The SSE ring of the event service.',
    props: {
      RingSize: { kind: 'int', description: 'How many events a reconnecting SSE client can catch up on.' },
      MaxSseClients: { kind: 'int', description: 'The most SSE streams open at once.' },
      LastEventId: { kind: 'int', description: 'The id of the newest event.' },
    },
  },
  EventRecord: {
    description: 'The backend event behind a Redfish event record.',
    props: {
      BackendSeq: { kind: 'int', description: 'The sequence number of the backend event.' },
      Kind: { kind: 'string', description: 'The kind of the backend event, e.g. capacity-added.' },
      FmldOwner: { kind: 'bool', description: 'Whether the attached head took the FM-LD lease.' },
      Tag: { kind: 'string', nullable: true, description: 'The tag of the capacity added or released.' },
    },
  },
} as const satisfies Record<string, OemType>;

export type OemTypeName = keyof typeof OEM_TYPES;

/** `{ CxlMhd: { '@odata.type': …, ...props } }`, the value of a body's `Oem`. */
export function oem(type: OemTypeName, props: Record<string, unknown>): { CxlMhd: Record<string, unknown> } {
  return { CxlMhd: { '@odata.type': `#${OEM_NAMESPACE}.${OEM_VERSION}.${type}`, ...props } };
}

const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;');
const EDM: Record<Kind, string> = {
  int: 'Edm.Int64',
  string: 'Edm.String',
  bool: 'Edm.Boolean',
  'int[]': 'Collection(Edm.Int64)',
  'string[]': 'Collection(Edm.String)',
};

function csdlProp(name: string, p: Prop): string {
  const nullable = p.nullable || p.kind.endsWith('[]') ? '' : ' Nullable="false"';
  const unit = p.unit ? `\n          <Annotation Term="Measures.Unit" String="${p.unit}"/>` : '';
  const lower = p.description.charAt(0).toLowerCase() + p.description.slice(1);
  return `        <Property Name="${name}" Type="${EDM[p.kind]}"${nullable}>
          <Annotation Term="OData.Permissions" EnumMember="OData.Permission/Read"/>
          <Annotation Term="OData.Description" String="${esc(p.description)}"/>
          <Annotation Term="OData.LongDescription" String="${esc(`This property shall contain ${lower.replace(/\.$/, '')}.`)}"/>${unit}
        </Property>`;
}

/** The CxlMhd CSDL document. */
export function oemCsdl(): string {
  const types = Object.entries(OEM_TYPES as Record<string, OemType>)
    .map(
      ([name, t]) => `      <ComplexType Name="${name}" BaseType="Resource.OemObject">
        <Annotation Term="OData.AdditionalProperties" Bool="false"/>
        <Annotation Term="OData.Description" String="${esc(t.description)}"/>
        <Annotation Term="OData.LongDescription" String="${esc(`This type shall contain the cxl-mhd properties of a ${name}.`)}"/>
${Object.entries(t.props)
  .map(([n, p]) => csdlProp(n, p))
  .join('\n')}
      </ComplexType>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">
  <edmx:Reference Uri="http://docs.oasis-open.org/odata/odata/v4.0/errata03/csd01/complete/vocabularies/Org.OData.Core.V1.xml">
    <edmx:Include Namespace="Org.OData.Core.V1" Alias="OData"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://docs.oasis-open.org/odata/odata/v4.0/errata03/csd01/complete/vocabularies/Org.OData.Measures.V1.xml">
    <edmx:Include Namespace="Org.OData.Measures.V1" Alias="Measures"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/RedfishExtensions_v1.xml">
    <edmx:Include Namespace="RedfishExtensions.v1_0_0" Alias="Redfish"/>
  </edmx:Reference>
  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/Resource_v1.xml">
    <edmx:Include Namespace="Resource"/>
  </edmx:Reference>
  <edmx:DataServices>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="${OEM_NAMESPACE}">
      <Annotation Term="Redfish.OwningEntity" String="cxl-mhd"/>
    </Schema>
    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="${OEM_NAMESPACE}.${OEM_VERSION}">
      <Annotation Term="Redfish.OwningEntity" String="cxl-mhd"/>
      <Annotation Term="Redfish.Release" String="1.0"/>
${types}
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>
`;
}

function jsonProp(p: Prop): Record<string, unknown> {
  const base: Record<string, unknown> =
    p.kind === 'int[]' || p.kind === 'string[]'
      ? { type: 'array', items: { type: p.kind === 'int[]' ? 'integer' : 'string' } }
      : { type: p.kind === 'int' ? 'integer' : p.kind === 'bool' ? 'boolean' : 'string', ...(p.values ? { enum: [...p.values] } : {}) };
  if (p.nullable) base.type = [base.type as string, 'null'];
  if (p.nullable && p.values) (base.enum as unknown[]).push(null);
  return { ...base, description: p.description, readonly: true, ...(p.unit ? { units: p.unit } : {}) };
}

/** The CxlMhd JSON Schema (draft-07, as DMTF publishes its own). */
export function oemJsonSchema(): Record<string, unknown> {
  const definitions: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(OEM_TYPES as Record<string, OemType>)) {
    definitions[name] = {
      type: 'object',
      additionalProperties: false,
      description: t.description,
      properties: {
        '@odata.type': { type: 'string', const: `#${OEM_NAMESPACE}.${OEM_VERSION}.${name}` },
        ...Object.fromEntries(Object.entries(t.props).map(([n, p]) => [n, jsonProp(p)])),
      },
      required: ['@odata.type'],
    };
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: OEM_JSON_SCHEMA_URI,
    title: `#${OEM_NAMESPACE}.${OEM_VERSION}`,
    owningEntity: 'cxl-mhd',
    definitions,
  };
}
