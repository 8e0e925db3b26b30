/**
 * tfjs's webgpu backend in Node, through the `webgpu` npm package (Dawn's Node bindings), for
 * kernel tests and `npm run bench:webgpu`. Node-only: it loads a native module.
 *
 * Where no hardware Vulkan driver is installed (these machines, CI), it uses the SwiftShader Vulkan
 * driver that Debian's chromium package ships beside its own libraries (ENVIRONMENT.md). Chromium
 * also keeps its Vulkan loader (libvulkan.so.1) there, off the library path, and LD_LIBRARY_PATH
 * cannot be changed for a process that is already running; so we load that loader once by its full
 * path (kept resident with RTLD_NODELETE) before Dawn starts: Dawn's later dlopen("libvulkan.so.1")
 * then finds the library already loaded under that name. VK_DRIVER_FILES tells the loader which
 * driver to use; the loader reads it when Dawn creates its Vulkan instance, so setting
 * process.env first is enough and `npx vitest run` needs no shell set-up.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { BackendError } from '../../errors';

/** Where Debian's and Ubuntu's chromium packages put SwiftShader's Vulkan driver. */
const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
];
/** A Vulkan loader installed system-wide (libvulkan1): hardware drivers are found through it. */
const SYSTEM_LOADERS = [
  '/usr/lib/x86_64-linux-gnu/libvulkan.so.1',
  '/usr/lib/aarch64-linux-gnu/libvulkan.so.1',
  '/usr/lib64/libvulkan.so.1',
  '/usr/lib/libvulkan.so.1',
];
/** glibc's value; Node's os.constants.dlopen does not list it. */
const RTLD_NODELETE = 0x1000;

export interface NodeWebGpu {
  /** e.g. "google swiftshader". */
  name: string;
  vendor: string;
  architecture: string;
  /** True for a software adapter (SwiftShader): its timings are a CPU's, not a GPU's. */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
  /** How the adapter was found, for people reading a test log or a bench table. */
  how: string;
}

export type NodeWebGpuResult = { ok: true; gpu: NodeWebGpu } | { ok: false; reason: string };

let pending: Promise<NodeWebGpuResult> | null = null;

/**
 * Gives Node a navigator.gpu, registers and selects tfjs's webgpu backend. Resolves to the adapter,
 * or to the reason there is none (no `webgpu` package, no Vulkan driver): callers decide whether
 * that skips (a developer's machine) or fails (CI). Safe to call more than once.
 * PEFTLAB_WEBGPU=software forces SwiftShader even where a hardware driver exists.
 */
export function initNodeWebGpu(): Promise<NodeWebGpuResult> {
  pending ??= start();
  return pending;
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

function preloadLoader(path: string): void {
  try {
    // Not a Node addon, so Node throws "did not self-register" after dlopen succeeded; RTLD_NODELETE
    // keeps the library loaded through Node's dlclose.
    const c = os.constants.dlopen;
    process.dlopen({ exports: {} } as NodeJS.Module, path, c.RTLD_NOW | c.RTLD_GLOBAL | RTLD_NODELETE);
  } catch {
    // expected, see above
  }
}

async function firstAdapter(dawn: DawnModule): Promise<GPUAdapter | null> {
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter)
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return adapter;
}

async function start(): Promise<NodeWebGpuResult> {
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu')) as unknown as DawnModule;
  } catch (e) {
    return {
      ok: false,
      reason: `the webgpu npm package did not load (${(e as Error).message}): run npm install`,
    };
  }
  Object.assign(globalThis, dawn.globals);
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const forceSoftware = process.env.PEFTLAB_WEBGPU === 'software';
  const systemLoader = SYSTEM_LOADERS.find((p) => existsSync(p));
  let adapter: GPUAdapter | null = null;
  let how = '';
  if (process.env.VK_DRIVER_FILES && !forceSoftware) {
    if (!systemLoader) {
      const lib = join(dirname(process.env.VK_DRIVER_FILES), 'libvulkan.so.1');
      if (existsSync(lib)) preloadLoader(lib);
    }
    adapter = await firstAdapter(dawn);
    how = `the Vulkan driver in VK_DRIVER_FILES=${process.env.VK_DRIVER_FILES}`;
  } else {
    if (systemLoader && !forceSoftware) {
      adapter = await firstAdapter(dawn);
      how = `the system Vulkan loader ${systemLoader}`;
    }
    if (!adapter) {
      const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
      if (!icd) {
        return {
          ok: false,
          reason:
            'no WebGPU adapter: no hardware Vulkan driver was found, and no SwiftShader driver from ' +
            `chromium (${SWIFTSHADER_ICDS.join(' or ')}): install chromium (apt-get install chromium) or a Vulkan driver`,
        };
      }
      process.env.VK_DRIVER_FILES = icd;
      // Chromium's own loader, unless one is installed system-wide (then that one reads the ICD).
      const lib = join(dirname(icd), 'libvulkan.so.1');
      if (!systemLoader && existsSync(lib)) preloadLoader(lib);
      adapter = await firstAdapter(dawn);
      how = `SwiftShader's Vulkan driver from chromium (${icd})`;
    }
  }
  if (!adapter) return { ok: false, reason: `no WebGPU adapter from ${how || 'Dawn'}` };
  const info = adapter.info as unknown as Record<string, unknown>;
  const vendor = String(info.vendor ?? '');
  const architecture = String(info.architecture ?? '');
  const software = Boolean(info.isFallbackAdapter) || architecture === 'swiftshader';
  const limits: Record<string, number> = {};
  // Limits and info fields are getters on the prototype: copy them with for...in.
  for (const k in adapter.limits) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  const gpu: NodeWebGpu = {
    name: [vendor, architecture].filter(Boolean).join(' ') || 'unknown adapter',
    vendor,
    architecture,
    software,
    features: [...adapter.features].map(String).sort(),
    limits,
    how,
  };
  // The package registers its backend at import time only if navigator.gpu exists then: import it
  // now that it does. If it was imported earlier (by backend.ts, say), register the same factory here.
  const webgpu = await import('@tensorflow/tfjs-backend-webgpu');
  if (!tf.findBackendFactory('webgpu')) {
    tf.registerBackend(
      'webgpu',
      async () => {
        const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
        if (!a) throw new BackendError('the WebGPU adapter went away: restart the process');
        const features: GPUFeatureName[] = a.features.has('timestamp-query') ? ['timestamp-query'] : [];
        const l = a.limits;
        const device = await a.requestDevice({
          requiredFeatures: features,
          requiredLimits: {
            maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
            maxBufferSize: l.maxBufferSize,
            maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
          },
        });
        return new webgpu.WebGPUBackend(device, a.info);
      },
      3,
    );
  }
  const warn = console.warn;
  console.warn = () => {}; // tfjs's hint about tfjs-node (see backend/node.ts)
  try {
    tf.env().set('PROD', true);
    if (!(await tf.setBackend('webgpu')))
      return { ok: false, reason: `tfjs's webgpu backend did not start on ${gpu.name}` };
    await tf.ready();
  } finally {
    console.warn = warn;
  }
  return { ok: true, gpu };
}

/** Describes the adapter in one line, saying plainly when it is software and not a GPU. */
export function describeAdapter(gpu: NodeWebGpu): string {
  return gpu.software
    ? `${gpu.name}: a software adapter running on the CPU, NOT a GPU; its timings say nothing about a GPU's`
    : `${gpu.name}: a hardware GPU adapter`;
}
