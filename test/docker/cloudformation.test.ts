/**
 * docker/cloudformation.yaml, checked at the schema level without AWS: parsed with CloudFormation's short tags
 * (!Ref, !GetAtt, !Sub, ...), every Ref, GetAtt, Sub variable and Condition points at something that exists, every
 * resource type is a known AWS type with the properties it requires, the GWLB pieces are wired as GWLB needs
 * (GENEVE 6081 target group health-checked on /healthz of the admin port, its attributes, listener, endpoint
 * service, Auto Scaling on the EMF metric docs/operations.md names), IAM is least privilege (CloudWatch Logs actions
 * on the one log group only; reading the one ECR repository), and the launch template's user data is
 * docker/ec2-user-data.sh verbatim and valid shell.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, type YAMLMap, type YAMLSeq } from 'yaml';
import { REPO } from '../helpers/appliance.js';
import { SETTINGS_SCHEMA } from '../../src/config/settings.js';
import { settingDefault } from '../../src/config/doc.js';

/** CloudFormation's short-form intrinsic functions, as their long forms. */
const INTRINSICS = ['Ref', 'Condition', 'GetAtt', 'Sub', 'Join', 'Select', 'Split', 'GetAZs', 'If', 'Not', 'Equals', 'And', 'Or', 'Base64', 'FindInMap', 'ImportValue', 'Cidr'];
const customTags = INTRINSICS.flatMap((f) => {
  const key = f === 'Ref' || f === 'Condition' ? f : `Fn::${f}`;
  return [
    { tag: `!${f}`, resolve: (s: string) => ({ [key]: f === 'GetAtt' ? s.split('.') : s }) },
    { tag: `!${f}`, collection: 'seq' as const, resolve: (seq: YAMLSeq) => ({ [key]: seq.toJSON() }) },
    { tag: `!${f}`, collection: 'map' as const, resolve: (map: YAMLMap) => ({ [key]: map.toJSON() }) },
  ];
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Resource {
  Type: string;
  Properties?: Record<string, Json>;
  Condition?: string;
}
interface Template {
  AWSTemplateFormatVersion: string;
  Parameters: Record<string, Json>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, Json>;
}

function parseTemplate(text: string): Template {
  return parse(text, { customTags }) as Template;
}

/** The AWS resource types this template may use, each with its required properties and its GetAtt attributes. */
const KNOWN_TYPES: Record<string, { required: string[]; attributes: string[] }> = {
  'AWS::EC2::VPC': { required: ['CidrBlock'], attributes: ['CidrBlock', 'DefaultSecurityGroup', 'VpcId'] },
  'AWS::EC2::Subnet': { required: ['VpcId'], attributes: ['AvailabilityZone', 'CidrBlock', 'SubnetId', 'VpcId'] },
  'AWS::EC2::RouteTable': { required: ['VpcId'], attributes: ['RouteTableId'] },
  'AWS::EC2::SubnetRouteTableAssociation': { required: ['RouteTableId', 'SubnetId'], attributes: ['Id'] },
  'AWS::EC2::SecurityGroup': { required: ['GroupDescription'], attributes: ['GroupId', 'VpcId'] },
  'AWS::EC2::VPCEndpoint': { required: ['ServiceName', 'VpcId'], attributes: ['Id', 'DnsEntries', 'NetworkInterfaceIds'] },
  'AWS::EC2::VPCEndpointService': { required: [], attributes: ['ServiceId'] },
  'AWS::EC2::VPCEndpointServicePermissions': { required: ['ServiceId'], attributes: [] },
  'AWS::EC2::LaunchTemplate': { required: ['LaunchTemplateData'], attributes: ['LaunchTemplateId', 'LatestVersionNumber', 'DefaultVersionNumber'] },
  'AWS::ElasticLoadBalancingV2::LoadBalancer': { required: [], attributes: ['LoadBalancerArn', 'LoadBalancerFullName', 'LoadBalancerName', 'DNSName'] },
  'AWS::ElasticLoadBalancingV2::TargetGroup': { required: [], attributes: ['TargetGroupArn', 'TargetGroupFullName', 'TargetGroupName', 'LoadBalancerArns'] },
  'AWS::ElasticLoadBalancingV2::Listener': { required: ['DefaultActions', 'LoadBalancerArn'], attributes: ['ListenerArn'] },
  'AWS::Logs::LogGroup': { required: [], attributes: ['Arn'] },
  'AWS::IAM::Role': { required: ['AssumeRolePolicyDocument'], attributes: ['Arn', 'RoleId'] },
  'AWS::IAM::InstanceProfile': { required: ['Roles'], attributes: ['Arn'] },
  'AWS::AutoScaling::AutoScalingGroup': { required: ['MaxSize', 'MinSize'], attributes: [] },
  'AWS::AutoScaling::ScalingPolicy': { required: ['AutoScalingGroupName'], attributes: ['Arn', 'PolicyName'] },
};
const PSEUDO = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);

/** Every place in `v` where an intrinsic refers to something, with its path for messages. */
function references(tpl: Template): string[] {
  const problems: string[] = [];
  const names = new Set([...Object.keys(tpl.Parameters), ...Object.keys(tpl.Resources)]);
  const conditions = new Set(Object.keys(tpl.Conditions ?? {}));
  const checkGetAtt = (res: string, attr: string, at: string): void => {
    const r = tpl.Resources[res];
    if (r === undefined) problems.push(`${at}: GetAtt of unknown resource ${res}`);
    else if (!(KNOWN_TYPES[r.Type]?.attributes ?? []).includes(attr)) problems.push(`${at}: ${r.Type} has no attribute ${attr} we know`);
  };
  const subVars = (s: string, local: Set<string>, at: string): void => {
    for (const m of s.matchAll(/\$\{([^}]*)\}/g)) {
      const v = m[1] as string;
      if (v.startsWith('!')) continue; // ${!Literal}
      if (local.has(v) || PSEUDO.has(v) || names.has(v)) continue;
      const dot = v.indexOf('.');
      if (dot > 0) checkGetAtt(v.slice(0, dot), v.slice(dot + 1), at);
      else problems.push(`${at}: Fn::Sub variable \${${v}} is not a parameter, resource, pseudo parameter or local variable`);
    }
  };
  const walk = (v: Json, at: string): void => {
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${at}[${i}]`));
    if (v === null || typeof v !== 'object') return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Ref') {
        if (typeof x !== 'string' || !(names.has(x) || PSEUDO.has(x))) problems.push(`${at}: Ref to unknown ${JSON.stringify(x)}`);
      } else if (k === 'Condition' && typeof x === 'string') {
        if (!conditions.has(x)) problems.push(`${at}: unknown condition ${x}`);
      } else if (k === 'Fn::GetAtt') {
        const [res, attr] = x as [string, string];
        checkGetAtt(res, attr, at);
      } else if (k === 'Fn::Sub') {
        if (typeof x === 'string') subVars(x, new Set(), at);
        else {
          const [s, vars] = x as [string, Record<string, Json>];
          subVars(s, new Set(Object.keys(vars ?? {})), at);
          walk(vars, `${at}.Fn::Sub[1]`);
        }
        continue;
      } else if (k === 'Fn::If') {
        const [cond] = x as [string];
        if (!conditions.has(cond)) problems.push(`${at}: Fn::If on unknown condition ${cond}`);
      }
      walk(x, `${at}.${k}`);
    }
  };
  walk(tpl.Resources as unknown as Json, 'Resources');
  walk((tpl.Outputs ?? {}) as Json, 'Outputs');
  walk((tpl.Conditions ?? {}) as Json, 'Conditions');
  for (const [name, r] of Object.entries(tpl.Resources)) {
    if (r.Condition !== undefined && !conditions.has(r.Condition)) problems.push(`Resources.${name}: unknown condition ${r.Condition}`);
  }
  return problems;
}

const TEMPLATE_TEXT = readFileSync(join(REPO, 'docker', 'cloudformation.yaml'), 'utf8');
const tpl = parseTemplate(TEMPLATE_TEXT);
const res = (name: string): Resource => tpl.Resources[name] as Resource;
const byType = (type: string): [string, Resource][] => Object.entries(tpl.Resources).filter(([, r]) => r.Type === type);
const props = (r: Resource): Record<string, Json> => r.Properties ?? {};
const isRef = (v: Json | undefined, name: string): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && v['Ref'] === name;

t.test('the template parses and every resource type is a known AWS type with its required properties', async (t) => {
  t.equal(tpl.AWSTemplateFormatVersion, '2010-09-09');
  t.ok(Object.keys(tpl.Resources).length >= 15);
  for (const [name, r] of Object.entries(tpl.Resources)) {
    const known = KNOWN_TYPES[r.Type];
    t.ok(known !== undefined, `${name}: ${r.Type} is a known type`);
    for (const p of known?.required ?? []) t.ok(p in props(r), `${name}: ${r.Type} requires ${p}`);
  }
});

t.test('every Ref, GetAtt, Fn::Sub variable and condition resolves', async (t) => {
  t.same(references(tpl), []);
  // The checker itself catches what it is for.
  const broken = parseTemplate(TEMPLATE_TEXT.replace('LoadBalancerArn: !Ref GatewayLoadBalancer', 'LoadBalancerArn: !Ref GatewayLoadBalancr').replace('!GetAtt InstanceProfile.Arn', '!GetAtt InstanceProfile.Name'));
  const found = references(broken);
  t.match(found, [/Ref to unknown "GatewayLoadBalancr"/, /has no attribute Name/]);
  t.match(references(parseTemplate(TEMPLATE_TEXT.replace('REGION=', 'X=${Nope} REGION='))), [/\$\{Nope\} is not a parameter/]);
});

t.test('the GWLB pieces are wired as GWLB needs them', async (t) => {
  const [[gwlbName, gwlb] = ['', res('')]] = byType('AWS::ElasticLoadBalancingV2::LoadBalancer');
  t.equal(props(gwlb)['Type'], 'gateway');
  const [[tgName, tg] = ['', res('')]] = byType('AWS::ElasticLoadBalancingV2::TargetGroup');
  const p = props(tg);
  t.match(p, { Protocol: 'GENEVE', Port: 6081, TargetType: 'instance', HealthCheckProtocol: 'HTTP', HealthCheckPath: '/healthz' });
  const adminPort = String(settingDefault(SETTINGS_SCHEMA.shape.adminListen)).split(':')[1];
  t.equal(String(p['HealthCheckPort']), adminPort, 'health checks on the appliance health listener port (--admin-listen default)');
  const attrs = new Map((p['TargetGroupAttributes'] as { Key: string; Value: Json }[]).map((a) => [a.Key, a.Value]));
  for (const k of ['deregistration_delay.timeout_seconds', 'stickiness.enabled', 'target_failover.on_deregistration', 'target_failover.on_unhealthy']) t.ok(attrs.has(k), `target group sets ${k}`);
  t.equal(attrs.get('target_failover.on_deregistration'), attrs.get('target_failover.on_unhealthy'), 'AWS requires both failover keys alike');
  t.equal(attrs.get('target_failover.on_unhealthy'), 'no_rebalance', 'existing flows stay on a drained (unhealthy) appliance');

  const [[, listener] = ['', res('')]] = byType('AWS::ElasticLoadBalancingV2::Listener');
  t.ok(isRef(props(listener)['LoadBalancerArn'], gwlbName));
  t.ok(isRef((props(listener)['DefaultActions'] as Record<string, Json>[])[0]?.['TargetGroupArn'], tgName));
  const [[, svc] = ['', res('')]] = byType('AWS::EC2::VPCEndpointService');
  t.ok(isRef((props(svc)['GatewayLoadBalancerArns'] as Json[])[0], gwlbName), 'the endpoint service fronts the GWLB');

  const [[asgName, asg] = ['', res('')]] = byType('AWS::AutoScaling::AutoScalingGroup');
  t.ok((props(asg)['TargetGroupARNs'] as Json[]).some((v) => isRef(v, tgName)), 'instances register in the GENEVE target group');
  t.equal(props(asg)['HealthCheckType'], 'ELB');
  const [[ltName, lt] = ['', res('')]] = byType('AWS::EC2::LaunchTemplate');
  t.ok(isRef((props(asg)['LaunchTemplate'] as Record<string, Json>)['LaunchTemplateId'], ltName));
  const ltData = props(lt)['LaunchTemplateData'] as Record<string, Json>;
  t.match(ltData['MetadataOptions'], { HttpTokens: 'required' }, 'IMDSv2 only (the CloudWatch sink uses IMDSv2)');

  // Security group: GENEVE and health checks in, GENEVE back out (not a conntrack reply: ports are not swapped).
  const sgRules = (key: string): Record<string, Json>[] => byType('AWS::EC2::SecurityGroup').flatMap(([, r]) => (props(r)[key] as Record<string, Json>[] | undefined) ?? []);
  t.ok(sgRules('SecurityGroupIngress').some((r) => r['IpProtocol'] === 'udp' && r['FromPort'] === 6081));
  t.ok(sgRules('SecurityGroupIngress').some((r) => r['IpProtocol'] === 'tcp' && String(r['FromPort']) === adminPort));
  t.ok(sgRules('SecurityGroupEgress').some((r) => r['IpProtocol'] === 'udp' && r['ToPort'] === 6081));

  // Scaling on the EMF metric whose names docs/operations.md documents for the appliance to emit.
  const policies = byType('AWS::AutoScaling::ScalingPolicy').map(([, r]) => props(r));
  t.ok(policies.every((pp) => isRef(pp['AutoScalingGroupName'], asgName)));
  const emf = policies.map((pp) => (pp['TargetTrackingConfiguration'] as Record<string, Json>)['CustomizedMetricSpecification'] as Record<string, Json> | undefined).find((m) => m !== undefined);
  t.match(emf, { Namespace: 'GwlbInspector', MetricName: 'PacketsPerSecond', Statistic: 'Average' });
  const ops = readFileSync(join(REPO, 'docs', 'operations.md'), 'utf8');
  t.match(ops, /`GwlbInspector`/, 'docs/operations.md names the namespace');
  t.match(ops, /`PacketsPerSecond`/, 'docs/operations.md names the metric');
  t.match(ops, /`AutoScalingGroupName`/, 'docs/operations.md names the dimension');
});

t.test('IAM: CloudWatch Logs actions on the one log group only, and reading the one ECR repository', async (t) => {
  const LOGS_ALLOWED = new Set(['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams']);
  const ECR_READ = new Set(['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability']);
  const [[logGroup] = ['']] = byType('AWS::Logs::LogGroup');
  const roles = byType('AWS::IAM::Role');
  t.equal(roles.length, 1);
  const role = props((roles[0] as [string, Resource])[1]);
  t.match(role['AssumeRolePolicyDocument'], { Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] });
  t.notOk('ManagedPolicyArns' in role, 'no managed policies (they grant more than this needs)');
  const statements = (role['Policies'] as { PolicyDocument: { Statement: Record<string, Json>[] } }[]).flatMap((p) => p.PolicyDocument.Statement);
  let logsSeen = 0;
  for (const s of statements) {
    t.equal(s['Effect'], 'Allow');
    t.notOk('NotAction' in s || 'NotResource' in s);
    const actions = ([] as Json[]).concat(s['Action'] as Json).map(String);
    const resources = ([] as Json[]).concat(s['Resource'] as Json);
    for (const a of actions) t.notMatch(a, /\*/, `${a}: no wildcard actions`);
    if (actions.some((a) => a.startsWith('logs:'))) {
      logsSeen++;
      for (const a of actions) t.ok(LOGS_ALLOWED.has(a), `${a} is one of the CloudWatch Logs actions the sink needs`);
      for (const r of resources) {
        const scoped = JSON.stringify(r) === JSON.stringify({ 'Fn::GetAtt': [logGroup, 'Arn'] }) || (typeof r === 'object' && r !== null && 'Fn::Sub' in r && new RegExp(`:log-group:\\$\\{${logGroup}\\}`).test(JSON.stringify(r)));
        t.ok(scoped, `${JSON.stringify(r)} is the log group's ARN`);
      }
    } else {
      for (const a of actions) t.ok(ECR_READ.has(a) || a === 'ecr:GetAuthorizationToken', `${a} only reads the appliance image`);
      if (actions.includes('ecr:GetAuthorizationToken')) t.same(actions, ['ecr:GetAuthorizationToken'], 'the token action alone has Resource "*" (AWS allows nothing narrower)');
      else t.ok(resources.every((r) => isRef(r, 'EcrRepositoryArn')), 'image reads are scoped to the one repository');
    }
  }
  t.ok(logsSeen >= 1, 'a statement for the log group');
});

t.test('the launch template runs docker/ec2-user-data.sh verbatim, and it is valid shell', async (t) => {
  const file = readFileSync(join(REPO, 'docker', 'ec2-user-data.sh'), 'utf8');
  const [[, lt] = ['', res('')]] = byType('AWS::EC2::LaunchTemplate');
  const userData = (props(lt)['LaunchTemplateData'] as Record<string, Json>)['UserData'] as Record<string, Json>;
  const sub = (userData['Fn::Base64'] as Record<string, Json>)['Fn::Sub'] as [string, Record<string, Json>];
  t.equal(sub[0], file, 'identical to docker/ec2-user-data.sh');
  const bash = spawnSync('bash', ['-n', join(REPO, 'docker', 'ec2-user-data.sh')], { encoding: 'utf8' });
  t.equal(bash.status, 0, bash.stderr);
  t.notMatch(file.replace(/\$\{(ContainerImage|LogGroup|AWS::Region|GwlbSourceCidrs)\}/g, ''), /\$\{/, 'shell variables without braces: Fn::Sub leaves them alone');
  t.match(file, /--cap-drop ALL --cap-add NET_RAW/, 'the container gets CAP_NET_RAW only');
  t.match(file, /--network host/);
});
