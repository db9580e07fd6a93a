//! Where a tensor's memory lives.

use std::fmt;

/// A DLPack device type (`DLDeviceType`), kept as its raw number so that device types newer than
/// this crate still round-trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceType(pub i32);

#[allow(missing_docs)]
impl DeviceType {
    pub const CPU: DeviceType = DeviceType(1);
    pub const CUDA: DeviceType = DeviceType(2);
    pub const CUDA_HOST: DeviceType = DeviceType(3);
    pub const OPENCL: DeviceType = DeviceType(4);
    pub const VULKAN: DeviceType = DeviceType(7);
    pub const METAL: DeviceType = DeviceType(8);
    pub const VPI: DeviceType = DeviceType(9);
    pub const ROCM: DeviceType = DeviceType(10);
    pub const ROCM_HOST: DeviceType = DeviceType(11);
    pub const EXT_DEV: DeviceType = DeviceType(12);
    pub const CUDA_MANAGED: DeviceType = DeviceType(13);
    pub const ONE_API: DeviceType = DeviceType(14);
    pub const WEBGPU: DeviceType = DeviceType(15);
    pub const HEXAGON: DeviceType = DeviceType(16);
    pub const MAIA: DeviceType = DeviceType(17);
    pub const TRN: DeviceType = DeviceType(18);

    /// The DLPack name of the device type (`"kDLCPU"`, ...), or `None` when unknown.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [(i32, &str); 16] = [
            (1, "kDLCPU"),
            (2, "kDLCUDA"),
            (3, "kDLCUDAHost"),
            (4, "kDLOpenCL"),
            (7, "kDLVulkan"),
            (8, "kDLMetal"),
            (9, "kDLVPI"),
            (10, "kDLROCM"),
            (11, "kDLROCMHost"),
            (12, "kDLExtDev"),
            (13, "kDLCUDAManaged"),
            (14, "kDLOneAPI"),
            (15, "kDLWebGPU"),
            (16, "kDLHexagon"),
            (17, "kDLMAIA"),
            (18, "kDLTrn"),
        ];
        NAMES.iter().find(|(n, _)| *n == self.0).map(|(_, s)| *s)
    }
}

impl fmt::Debug for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "DeviceType({})", self.0),
        }
    }
}

/// A device: type and ordinal, as DLPack's `DLDevice`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Device {
    /// The device type.
    pub kind: DeviceType,
    /// The device ordinal (0 for host memory).
    pub id: i32,
}

impl Device {
    /// Host memory, the device every safe element access requires.
    pub const CPU: Device = Device {
        kind: DeviceType::CPU,
        id: 0,
    };

    /// True when the memory is directly readable by this process (CPU, CUDA-pinned host
    /// memory, ROCm host memory and CUDA managed memory).
    pub fn is_host_accessible(self) -> bool {
        matches!(
            self.kind,
            DeviceType::CPU
                | DeviceType::CUDA_HOST
                | DeviceType::ROCM_HOST
                | DeviceType::CUDA_MANAGED
        )
    }

    /// The DLPack ABI form.
    pub fn to_dlpack(self) -> dlpark::ffi::DLDevice {
        dlpark::ffi::DLDevice {
            device_type: dlpark::ffi::DLDeviceType(self.kind.0 as u32),
            device_id: self.id,
        }
    }

    /// From the DLPack ABI form.
    pub fn from_dlpack(raw: dlpark::ffi::DLDevice) -> Device {
        Device {
            kind: DeviceType(raw.device_type.0 as i32),
            id: raw.device_id,
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:{}", self.kind, self.id)
    }
}

impl From<Device> for dlpark::ffi::DLDevice {
    /// [`Device::to_dlpack`].
    fn from(device: Device) -> Self {
        device.to_dlpack()
    }
}

impl From<dlpark::ffi::DLDevice> for Device {
    /// [`Device::from_dlpack`].
    fn from(raw: dlpark::ffi::DLDevice) -> Self {
        Device::from_dlpack(raw)
    }
}
